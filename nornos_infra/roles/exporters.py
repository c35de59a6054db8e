"""exporters: what Prometheus reads on the VMs, from Debian's own packages.

- node exporter on every host (``prometheus-node-exporter``), with the textfile collector the
  backup scripts publish into (the last run, success, time and size of each backup job);
- postgres exporter on the PostgreSQL host, logged in over the local socket as the role
  ``prometheus`` (peer authentication: no password anywhere), which has ``pg_monitor`` and nothing
  else; plus WAL archiving from ``pg_stat_archiver``;
- redis exporter on the Redis host, as the ACL user ``nornos_monitor`` (read-only server commands,
  no key access; its password from the env's secrets, hashed in users.acl).

Each listens on the host's private address only; the firewall role opens the port to the k3s
nodes only (where Prometheus runs). A drop-in restarts each one when it fails and starts it once
the network is up, so a host that rebooted comes back with its exporters.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

from pyinfra.api.exceptions import OperationError
from pyinfra.context import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, postgres, systemd

from nornos_infra.roles import context
from nornos_infra.roles.ops import apt_packages, apt_update, secret_file
from nornos_infra.roles.redis import MONITOR_USER as REDIS_MONITOR_USER
from nornos_infra.vocabulary import NODE_EXPORTER_PORT as NODE_PORT
from nornos_infra.vocabulary import POSTGRES_EXPORTER_PORT as POSTGRES_PORT
from nornos_infra.vocabulary import REDIS_EXPORTER_PORT as REDIS_PORT

TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"  # Debian's; the backup scripts write here
PG_ROLE = "prometheus"  # the exporter's system user: peer authentication maps it to this role
QUERIES = "/etc/prometheus-postgres-exporter/nornos-queries.yaml"

# WAL archiving (pgBackRest's archive_command): how many segments went and failed, and how long ago;
# connections against max_connections (read here, not from the exporter's settings metrics)
ARCHIVER_QUERIES = """\
# managed by nornos-infra: for the WalArchivingFailing and PostgresConnectionsNearLimit alerts
pg_connections:
  query: >-
    SELECT count(*) AS used, current_setting('max_connections')::int AS max FROM pg_stat_activity
  metrics:
    - used:
        usage: GAUGE
        description: connections open now (every backend, idle ones included)
    - max:
        usage: GAUGE
        description: the server's max_connections
pg_archiver:
  query: >-
    SELECT archived_count, failed_count,
           COALESCE(EXTRACT(EPOCH FROM last_archived_time), 0) AS last_archived_timestamp_seconds,
           COALESCE(EXTRACT(EPOCH FROM last_failed_time), 0) AS last_failed_timestamp_seconds
    FROM pg_stat_archiver
  metrics:
    - archived_count:
        usage: COUNTER
        description: WAL files archived
    - failed_count:
        usage: COUNTER
        description: failed attempts to archive a WAL file
    - last_archived_timestamp_seconds:
        usage: GAUGE
        description: when the last WAL file was archived (0 never)
    - last_failed_timestamp_seconds:
        usage: GAUGE
        description: when archiving last failed (0 never)
"""


def _drop_in(unit: str, after: str = "") -> Any:
    text = ("# managed by nornos-infra: bound to the private address, so it starts once the network is up,\n"
            "# and comes back by itself when it fails\n"
            "[Unit]\n"
            f"Wants=network-online.target\nAfter=network-online.target{(' ' + after) if after else ''}\n"
            "StartLimitIntervalSec=0\n"
            "[Service]\nRestart=always\nRestartSec=5s\n")
    return files.put(name=f"{unit}: start after the network, restart on failure", src=StringIO(text),
                     dest=f"/etc/systemd/system/{unit}.service.d/50-nornos.conf", mode="644",
                     create_remote_dir=True)


def _service(unit: str, drop_in: Any, *settings: Any) -> None:
    systemd.daemon_reload(name=f"systemd: read the {unit} drop-in", _if=drop_in.did_change)
    systemd.service(name=f"{unit} enabled and running", service=unit, running=True, enabled=True)
    systemd.service(name=f"{unit}: restart on new settings", service=unit, restarted=True,
                    _if=lambda: any(op.did_change() for op in (drop_in, *settings)))


def _private_ip() -> str:
    address = host.data.get("private_ip")
    if not address:
        raise OperationError(f"{host.name}: the inventory has no private_ip; run provision.py")
    return str(address)


@context.role("Node exporter")
def node_exporter() -> None:
    address = _private_ip()
    apt_update(name="Update apt lists", cache_time=6 * 3600)
    # without its recommended collectors package (timers for apt and SMART statistics, smartmontools)
    apt_packages(name="Install the node exporter", packages=["prometheus-node-exporter"], recommends=False)
    files.directory(name="node exporter: the textfile collector's directory", path=TEXTFILE_DIR, mode="755")
    settings = files.put(name="node exporter: private address, textfile collector", dest=(
        "/etc/default/prometheus-node-exporter"), mode="644", src=StringIO(
        "# managed by nornos-infra\n"
        f'ARGS="--web.listen-address={address}:{NODE_PORT} --collector.textfile.directory={TEXTFILE_DIR}"\n'))
    unit = "prometheus-node-exporter"
    _service(unit, _drop_in(unit), settings)


@context.role("PostgreSQL exporter")
def postgres_exporter() -> None:
    address = _private_ip()
    apt_packages(name="Install the PostgreSQL exporter", packages=["prometheus-postgres-exporter"])
    member = host.get_fact(Command, command=(
        f"runuser -u postgres -- psql -tAc \"SELECT 'ok' FROM pg_roles WHERE rolname = '{PG_ROLE}' AND "
        f"NOT rolsuper AND pg_has_role('{PG_ROLE}', 'pg_monitor', 'member')\" 2>/dev/null || true"))
    if str(member or "").strip() != "ok":
        # monitoring rights only: pg_monitor reads the statistics views, nothing of the apps' data
        postgres.sql(name=f"PostgreSQL role {PG_ROLE}: pg_monitor only", _su_user="postgres", sql=(
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_ROLE}') THEN "
            f"CREATE ROLE {PG_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF; END$$; "
            f"GRANT pg_monitor TO {PG_ROLE}"))
    queries = files.put(name="postgres exporter: WAL archiving query", src=StringIO(ARCHIVER_QUERIES), dest=QUERIES,
                        mode="644", create_remote_dir=True)
    settings = files.put(name="postgres exporter: local socket as role prometheus, private address", dest=(
        "/etc/default/prometheus-postgres-exporter"), mode="644", src=StringIO(
        "# managed by nornos-infra: peer authentication over the socket (no password)\n"
        f"DATA_SOURCE_NAME='host=/var/run/postgresql user={PG_ROLE} dbname=postgres sslmode=disable'\n"
        f'ARGS="--web.listen-address={address}:{POSTGRES_PORT} --extend.query-path={QUERIES}"\n'))
    unit = "prometheus-postgres-exporter"
    _service(unit, _drop_in(unit, after="postgresql.service"), settings, queries)


@context.role("Redis exporter")
def redis_exporter() -> None:
    address = _private_ip()
    values = context.current().secrets
    apt_packages(name="Install the Redis exporter", packages=["prometheus-redis-exporter"])
    # the password only in this file, readable by root and the exporter's group
    settings = secret_file(name="redis exporter: private address, ACL user nornos_monitor",
                           path="/etc/default/prometheus-redis-exporter", mode="640", user="root", group="prometheus",
                           content=("# managed by nornos-infra\n"
                                    f'ARGS="-web.listen-address={address}:{REDIS_PORT} '
                                    f'-redis.addr=redis://127.0.0.1:6379"\n'
                                    f"REDIS_USER={REDIS_MONITOR_USER}\n"
                                    f"REDIS_PASSWORD={values['redis_monitor_password']}\n"))
    unit = "prometheus-redis-exporter"
    _service(unit, _drop_in(unit, after="redis-server.service"), settings)

