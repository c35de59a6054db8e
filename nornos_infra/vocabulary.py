"""The platform's vocabulary, in one place: the host roles and the inventory groups they
become, and the apps that own a database. Everything else imports these names.
"""

from __future__ import annotations

# a server's role (label nornos.io/role) -> its pyinfra inventory group
GROUP_OF_ROLE = {"k3s_server": "k3s_servers", "k3s_agent": "k3s_agents", "postgres": "postgres", "redis": "redis"}
GROUPS = tuple(GROUP_OF_ROLE.values())

# the apps that each own a PostgreSQL database, role and password (Kubernetes names)
DB_APPS = ("patient-app", "doctor-app", "agent-service", "shared-data-server", "auth-service")


def sql_name(app: str) -> str:
    """An app's database and role name in PostgreSQL (no dashes)."""
    return app.replace("-", "_")


# the exporters on the hosts (nornos_infra/roles/exporters.py), as the firewall opens them to the
# k3s nodes and Prometheus scrapes them (nornos_infra/monitoring/scrape.py)
NODE_EXPORTER_PORT, POSTGRES_EXPORTER_PORT, REDIS_EXPORTER_PORT = 9100, 9187, 9121
