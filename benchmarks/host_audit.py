"""Outside auditors on real machines: Lynis and ssh-audit against one host per role (issue 15).

    flock /tmp/nornos-realhosts.lock .venv/bin/python benchmarks/host_audit.py [--details] [--no-op]

Root on Linux, nothing else using real hosts. Starts its own localcloud --hosts nspawn,
provisions dev (admin address 198.51.100.1/32, this machine on the public side), makes the
env's secrets and runs ``pyinfra inventories/dev.py deploys/all.py`` limited to one host per
role (k3s server, k3s agent, PostgreSQL, Redis). Then on each of them it installs Lynis
(Debian's package, through the machine's apt proxy), runs ``lynis audit system --quick
--no-colors`` and reads ``/var/log/lynis-report.dat`` (hardening_index, warning[],
suggestion[]); from this machine it runs ssh-audit (the venv's, from the dev extras) against
the host's public address. Prints one row per role: hardening index, Lynis warnings,
suggestions, ssh-audit failures and warnings, and the result of the daily
file-integrity check run right then. ``--details`` adds each warning and suggestion
(test id and text); ``--no-op`` runs the deploy a second time first and prints the operations
that changed (the goal: none); ``--apt-faults`` makes the first deploy go through the e2e
tests' apt faults. Figures only; nothing is asserted (the e2e tests assert).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from realhosts import ANSI, RealDev, changed_operations

# one host per role of dev (environments/dev.yaml)
ROLE_HOSTS = {"k3s_server": "nornos-dev-control-plane-1", "k3s_agent": "nornos-dev-workers-1",
              "postgres": "nornos-dev-postgres-1", "redis": "nornos-dev-redis-1"}
# as tests/e2e/test_deploy_hosts.py: 10 % of the machines' apt requests answered 503, 10 % cut midway
APT_FAULTS = {"apt": [{"fault": "error", "rate": 0.1, "status": 503}, {"fault": "cut", "rate": 0.1}]}


@dataclass
class Audit:
    role: str
    host: str
    index: int | None = None
    warnings: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    ssh_fail: list[str] = field(default_factory=list)
    ssh_warn: list[str] = field(default_factory=list)
    integrity: str = "-"


def parse_report(text: str) -> tuple[int | None, list[str], list[str]]:
    """hardening_index, warning[] and suggestion[] of a lynis-report.dat (``key=value`` lines;
    a finding is ``TEST-ID|text|details|solution|``)."""
    index: int | None = None
    warnings: list[str] = []
    suggestions: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "hardening_index" and value.strip().isdigit():
            index = int(value)
        elif key == "warning[]":
            warnings.append(_finding(value))
        elif key == "suggestion[]":
            suggestions.append(_finding(value))
    return index, warnings, suggestions


def _finding(value: str) -> str:
    parts = value.split("|")
    test, text = parts[0], parts[1] if len(parts) > 1 else ""
    details = parts[2] if len(parts) > 2 and parts[2] not in ("", "-") else ""
    return f"{test}: {text}" + (f" ({details})" if details else "")


def parse_ssh_audit(text: str) -> tuple[list[str], list[str]]:
    lines = [ANSI.sub("", line).strip() for line in text.splitlines()]
    return [ln for ln in lines if "[fail]" in ln], [ln for ln in lines if "[warn]" in ln]


class Run(RealDev):
    def deploy(self) -> str:
        """One pyinfra run on the audited hosts; its results table (stderr)."""
        proc = self.pyinfra(*[arg for name in ROLE_HOSTS.values() for arg in ("--limit", name)])
        log = proc.stdout + proc.stderr
        if not all(name in log for name in ROLE_HOSTS.values()):  # a --limit that matched nothing exits 0
            raise RuntimeError(f"pyinfra did not deploy every audited host: {ANSI.sub('', log).strip()[-1500:]}")
        return proc.stderr

    def audit(self, role: str, name: str) -> Audit:
        # the lists the deploy left may predate lynis's entry in the proxy: update when it is not found
        self.on(name, "for i in 1 2 3; do DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lynis "
                      ">/dev/null && exit 0; apt-get update -qq; sleep 2; done; exit 1")
        self.on(name, "lynis audit system --quick --no-colors >/var/log/lynis-run.log 2>&1")
        index, warnings, suggestions = parse_report(self.on(name, "cat /var/log/lynis-report.dat"))
        ssh_audit = subprocess.run([str(Path(sys.executable).parent / "ssh-audit"), "-n", "--skip-rate-test",
                                    self.address(name)], capture_output=True, text=True, timeout=120)
        fails, warns = parse_ssh_audit(ssh_audit.stdout)
        # the daily file-integrity check, run now (after Lynis's own install): "ok", "failed" or "-"
        integrity = self.on(name, "test -x /usr/local/sbin/nornos-integrity-check || { echo -; exit 0; }; "
                                  "/usr/local/sbin/nornos-integrity-check >/dev/null 2>&1; "
                                  "cut -d' ' -f1 /var/lib/nornos/integrity.status").strip()
        return Audit(role, name, index, warnings, suggestions, fails, warns, integrity)


def table(audits: list[Audit]) -> str:
    rows = [("role", "host", "Lynis index", "warnings", "suggestions", "ssh-audit fail", "ssh-audit warn",
             "integrity")]
    rows += [(a.role, a.host, str(a.index), str(len(a.warnings)), str(len(a.suggestions)), str(len(a.ssh_fail)),
              str(len(a.ssh_warn)), a.integrity) for a in audits]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--details", action="store_true", help="print every warning and suggestion")
    parser.add_argument("--no-op", action="store_true", help="deploy twice; print what changed the second time")
    parser.add_argument("--apt-faults", action="store_true",
                        help="the first deploy through 20 %% failing apt requests (as tests/e2e), lifted after it")
    parser.add_argument("--shell", help="a command to run on each audited host at the end (its output is printed)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("host_audit: needs root (real hosts)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="host-audit-", dir="/var/tmp") as tmp:
        run = Run(Path(tmp), json.dumps(APT_FAULTS) if args.apt_faults else "")
        try:
            run.provision()
            run.deploy()
            if args.apt_faults:
                run.lift_faults()
            if args.no_op:
                changed = changed_operations(run.deploy())
                print("second deploy: " + (f"{len(changed)} operations changed:\n  " + "\n  ".join(changed)
                                           if changed else "0 operations changed"), flush=True)
            audits = [run.audit(role, name) for role, name in ROLE_HOSTS.items()]
            for name in ROLE_HOSTS.values() if args.shell else ():
                print(f"== {name}: {args.shell}\n{run.on(name, args.shell + '; true')}", flush=True)
        finally:
            run.close()
    if args.details:
        for a in audits:
            print(f"== {a.role} ({a.host})")
            for line in a.warnings:
                print(f"  warning    {line}")
            for line in a.suggestions:
                print(f"  suggestion {line}")
            for line in a.ssh_fail + a.ssh_warn:
                print(f"  ssh-audit  {line}")
    print(table(audits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
