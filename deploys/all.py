"""Every role, in runbook order: ``pyinfra inventories/dev.py deploys/all.py``.

base -> firewall -> node exporter -> postgres (+ its exporter) -> redis (+ its exporter) -> backups
(dumps, then point-in-time recovery) -> k3s servers -> k3s agents -> manifests -> audit rules -> the
file-integrity baseline.
Each role also runs alone: ``pyinfra inventories/dev.py deploys/postgres.py`` (or
``--limit postgres`` here).
"""

from pyinfra import host

from nornos_infra.roles import backups, base, exporters, firewall, k3s, manifests, pitr, postgres, redis
from nornos_infra.roles.hardening import audit_rules, integrity_baseline

base.base()
firewall.firewall()
exporters.node_exporter()  # before the backups: they publish into its textfile directory
if "postgres" in host.groups:
    postgres.postgresql()
    exporters.postgres_exporter()
if "redis" in host.groups:
    redis.redis()
    exporters.redis_exporter()
if "postgres" in host.groups:
    backups.postgres_backups()
    pitr.pitr()
if "redis" in host.groups:
    backups.redis_backups()
if "k3s_servers" in host.groups:
    k3s.k3s_server()
if "k3s_agents" in host.groups:
    k3s.k3s_agent()
manifests.manifests()
audit_rules()  # after the roles: the directories they watch exist
integrity_baseline()  # last: the configuration every role wrote is the baseline
