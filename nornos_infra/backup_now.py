"""``invoke backup --env E [--only postgres|redis]``: the nightly backups, run now.

Runs on each data host the same script its cron job runs (``nornos-pg-backup`` at 03:00,
``nornos-redis-backup`` at 03:30, both written by nornos_infra/roles/backups.py), logged in as
pyinfra logs in (the inventory's user and key, the host key pinned in its known_hosts file).
The script's own output, status file and Slack message are what a nightly run gives; its exit
status is the task's.
"""

from __future__ import annotations

from pathlib import Path

from nornos_infra import host_command, inventory
from nornos_infra.errors import UserError
from nornos_infra.host_command import Result

SCRIPTS = {"postgres": "/usr/local/sbin/nornos-pg-backup", "redis": "/usr/local/sbin/nornos-redis-backup"}
TIMEOUT = 3600.0  # seconds: a large database's dump and upload


def run(inventory_file: Path, only: str | None = None) -> list[Result]:
    """Each data host's backup, one after the other (PostgreSQL first)."""
    if only is not None and only not in SCRIPTS:
        raise UserError(f"--only {only!r}: use one of {', '.join(SCRIPTS)}")
    loaded = inventory.load(inventory_file)
    results = []
    for group in [only] if only else list(SCRIPTS):
        hosts = loaded.hosts(group)
        if not hosts:
            raise UserError(f"{inventory_file} has no {group} host; run provision.py and deploys/all.py first")
        for host in hosts:
            results.append(_on(host, SCRIPTS[group]))
    return results


def _on(host: inventory.Host, script: str) -> Result:
    outcome = host_command.run(host, f"test -x {script} || exit 127; {script}", TIMEOUT)
    output = outcome.output
    if outcome.status == 127:
        output = f"{script} is not there: deploy the backups first (pyinfra ... deploys/all.py)"
    return Result(host.name, script, outcome.status, output)
