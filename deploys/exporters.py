"""The exporters alone: ``pyinfra inventories/dev.py deploys/exporters.py`` (node exporter everywhere,
the PostgreSQL and Redis exporters on their hosts; Prometheus on the k3s nodes reads them)."""

from pyinfra import host

from nornos_infra.roles import exporters

exporters.node_exporter()
if "postgres" in host.groups:
    exporters.postgres_exporter()
if "redis" in host.groups:
    exporters.redis_exporter()
