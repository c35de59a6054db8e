"""postgres: the data volume (formatted only when blank), PostgreSQL on it, reachable only
from the k3s nodes over the private network, TLS and scram-sha-256 required, one database
and role per app (the apps' URLs say sslmode=require).

pyinfra's postgres.role compares keys its fact does not return and re-sets any password on
every run (pyinfra-notes.md), so roles and passwords are handled here with facts and
guarded SQL: a second run changes nothing, and only a SCRAM verifier (never the password)
is sent to the host.
"""

from __future__ import annotations

import ipaddress

from pyinfra import logger
from pyinfra.api.exceptions import OperationError
from pyinfra.context import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, postgres, server, systemd

from nornos_infra.paths import TEMPLATES
from nornos_infra.roles import context, scram, sizing
from nornos_infra.roles.facts import FilesystemType, InContainer, MemoryMb, PostgresNames, PostgresPasswordVerifier
from nornos_infra.roles.ops import apt_packages, apt_update
from nornos_infra.vocabulary import DB_APPS, sql_name

PG_VERSION = "15"  # Debian 12's PostgreSQL
MOUNT = "/mnt/postgres-data"
DATA_DIR = f"{MOUNT}/pgdata"
# one role and one database per app, both named after it (least privilege between apps)
APPS = tuple(sql_name(app) for app in DB_APPS)
CONF_DIR = f"/etc/postgresql/{PG_VERSION}/main"
SERVICE = f"postgresql@{PG_VERSION}-main"
# systemd's name for the mount unit of MOUNT (systemd-escape --path --suffix=mount)
MOUNT_UNIT = "mnt-postgres\\x2ddata.mount"


def hba_entries(k3s_nodes: list[str]) -> list[str]:
    return [f"{ip}/32" for ip in sorted(k3s_nodes, key=ipaddress.ip_address)]


@context.role("PostgreSQL")
def postgresql() -> None:
    device = host.data.get("volume_device")
    private_ip = host.data.get("private_ip")
    if not device or not private_ip:
        raise OperationError(f"{host.name}: the inventory has no volume_device/private_ip; run provision.py")
    apt_update(name="Update apt lists", cache_time=6 * 3600)
    apt_packages(name="Install PostgreSQL", packages=[f"postgresql-{PG_VERSION}", "postgresql-client"])
    _data_volume(str(device))
    _cluster_on_the_volume()
    _settings_and_service(str(private_ip))
    _roles_and_databases()


def _data_volume(device: str) -> None:
    """The volume formatted once (never over data), in fstab, mounted, with the data directory."""
    filesystem = host.get_fact(FilesystemType, device=device)
    if filesystem is None:
        raise OperationError(f"{host.name}: volume {device} is not attached; run provision.py")
    if filesystem == "":
        # checked again on the host right before mkfs: never format a volume that holds data
        server.shell(name="Format the blank data volume",
                     commands=[f"blkid -p {device} >/dev/null 2>&1 || mkfs.ext4 -q -L pgdata {device}"])
    elif filesystem not in ("ext4", "xfs"):
        raise OperationError(f"{host.name}: {device} holds a {filesystem} filesystem; not touching it")
    fs_type = filesystem or "ext4"
    files.line(name="Mount the volume through fstab", path="/etc/fstab", line=f"^{device} ",
               replace=f"{device} {MOUNT} {fs_type} defaults,nofail,discard 0 2")
    files.directory(name="Mount point", path=MOUNT, mode="755")
    server.shell(name="Mount the data volume", commands=[f"mountpoint -q {MOUNT} || mount {MOUNT}"],
                 _if=lambda: not _mounted())
    _grow_filesystem(device, fs_type)
    files.directory(name="Data directory", path=DATA_DIR, user="postgres", group="postgres", mode="700")


def _cluster_on_the_volume() -> None:
    clusters = host.get_fact(Command, command="pg_lsclusters -h 2>/dev/null || true") or ""
    if f" {DATA_DIR} " not in f" {clusters} ":
        server.shell(name="Move the cluster onto the volume", commands=[
            # the package's default cluster is dropped only while it holds no application database
            f"if pg_lsclusters -h | grep -q '^{PG_VERSION} main '; then "
            f"n=$(runuser -u postgres -- psql -tAc \"select count(*) from pg_database where not datistemplate "
            f"and datname <> 'postgres'\" 2>/dev/null || echo 0); [ \"$n\" = 0 ] || "
            f"{{ echo 'the default cluster holds databases; refusing to drop it' >&2; exit 1; }}; "
            f"pg_dropcluster --stop {PG_VERSION} main; fi",
            f"pg_createcluster {PG_VERSION} main -d {DATA_DIR} -- --auth-local=peer --auth-host=scram-sha-256",
        ])


def _settings_and_service(private_ip: str) -> None:
    """Sized settings, pg_hba for the k3s nodes, the unit's volume guard; running, and restarted or
    reloaded when what it reads changed."""
    memory = sizing.effective_mb(host.get_fact(MemoryMb), host.data.get("memory_mb"))
    conf = files.template(name="PostgreSQL settings", src=str(TEMPLATES / "postgresql.conf.j2"),
                          dest=f"{CONF_DIR}/conf.d/50-nornos.conf", create_remote_dir=True,
                          user="postgres", group="postgres", mode="644", private_ip=private_ip,
                          settings=sizing.postgres_settings(memory))
    nodes = list(host.data.get("k3s_node_private_ips") or [])
    hba = files.template(name="pg_hba: the k3s nodes only", src=str(TEMPLATES / "pg_hba.conf.j2"),
                         dest=f"{CONF_DIR}/pg_hba.conf", user="postgres", group="postgres", mode="640",
                         apps=APPS, sources=hba_entries(nodes))
    files.put(name="Start only on the mounted volume (check)", src=str(TEMPLATES / "nornos-require-mount"),
              dest="/usr/local/sbin/nornos-require-mount", mode="755")
    unit = files.template(name="PostgreSQL waits for its volume and restarts on failure",
                          src=str(TEMPLATES / "postgresql-volume.conf.j2"),
                          dest=f"/etc/systemd/system/{SERVICE}.service.d/50-nornos-volume.conf",
                          create_remote_dir=True, mode="644", mount=MOUNT, mount_unit=MOUNT_UNIT,
                          status_file="/var/lib/nornos/volume.status.postgresql")
    systemd.daemon_reload(name="systemd: read the PostgreSQL drop-in", _if=unit.did_change)
    systemd.service(name="PostgreSQL running", service=SERVICE, running=True, enabled=True)
    # listen_addresses needs a restart; _if, because restarted=conf.did_change is always truthy
    systemd.service(name="PostgreSQL: restart on new settings", service=SERVICE, restarted=True,
                    _if=conf.did_change)
    systemd.service(name="PostgreSQL: reload pg_hba", service=SERVICE, reloaded=True,
                    _if=lambda: hba.did_change() and not conf.did_change())


def _roles_and_databases() -> None:
    """One role and one database per app, the password stored as a SCRAM verifier made here."""
    values = context.current().secrets
    # read before this run's operations execute: None when the server is stopped now (after a
    # reboot without its volume, say); the operation above starts it, and the statements
    # below then check on the host instead (they show as changes in that run only)
    roles = host.get_fact(PostgresNames, catalog="pg_roles")
    databases = host.get_fact(PostgresNames, catalog="pg_database")
    for app in APPS:
        password = values[f"db_password_{app}"]
        if roles is None:
            postgres.sql(name=f"Create role {app} (if missing)", _su_user="postgres",
                         sql=f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{app}') "
                             f"THEN CREATE ROLE {app} LOGIN; END IF; END$$")
        elif app not in roles:
            postgres.sql(name=f"Create role {app}", sql=f"CREATE ROLE {app} LOGIN", _su_user="postgres")
        stored = host.get_fact(PostgresPasswordVerifier, role=app) if roles is not None else ""
        if not scram.matches(password, stored):
            postgres.sql(name=f"Set the password of {app} (SCRAM verifier only)", _su_user="postgres",
                         sql=f"ALTER ROLE {app} PASSWORD '{scram.verifier(password)}'")
        if databases is None:
            server.shell(name=f"Create database {app} (if missing)", commands=[
                f"runuser -u postgres -- psql -tAc \"SELECT 1 FROM pg_database WHERE datname = '{app}'\" "
                f"| grep -q 1 || runuser -u postgres -- createdb --owner={app} {app}"])
        elif app not in databases:
            postgres.sql(name=f"Create database {app}", sql=f"CREATE DATABASE {app} OWNER {app}",
                         _su_user="postgres")


GROW_THRESHOLD = 1 << 20  # bytes: a grown volume adds whole GB; a grown file system ends within a block


def _grow_filesystem(device: str, fs_type: str) -> None:
    """A volume grown in the env file (volume_gb) is grown by provision.py; the file system follows
    here, online (PostgreSQL keeps running), decided when the step runs: after this run's mount.
    In a container (localcloud's machines) the resize ioctl is refused (EPERM: no CAP_SYS_RESOURCE
    under systemd-nspawn): there the deploy says so instead of failing."""
    if host.get_fact(InContainer):
        if _volume_larger_than_filesystem(device, fs_type):
            logger.warning(f"{host.name}: {MOUNT} is smaller than its volume, and a file system cannot grow "
                           "online in a container; on a server this deploy grows it")
        return
    grow = f"resize2fs {device}" if fs_type == "ext4" else f"xfs_growfs {MOUNT}"
    server.shell(name="Grow the file system to the volume (online)", commands=[grow],
                 _if=lambda: _volume_larger_than_filesystem(device, fs_type))


def sizes_command(device: str, fs_type: str) -> str:
    """Prints the block device's size and the file system's own (blocks times block size: df
    would leave out the metadata), in bytes, on one line."""
    # printf, not print: Debian's awk (mawk) prints products past 2^31 as 5.36871e+10
    size_of_fs = (f"dumpe2fs -h {device} 2>/dev/null | awk -F: '/^Block count/{{c=$2}} /^Block size/{{s=$2}} "
                  "END{printf \"%.0f\\n\", c*s}'" if fs_type == "ext4" else
                  f"xfs_info {MOUNT} | sed -n 's/^data *= *bsize=\\([0-9]*\\) *blocks=\\([0-9]*\\).*/\\1 \\2/p' "
                  "| awk '{printf \"%.0f\\n\", $1*$2}'")
    return f"echo $(blockdev --getsize64 {device}) $({size_of_fs})"


def volume_larger_than_filesystem(output: str) -> bool:
    """From sizes_command's output: the volume grew past its file system."""
    try:
        device_bytes, fs_bytes = (int(v) for v in output.split())
    except ValueError:
        return False  # not mounted or not readable: nothing to grow yet
    return device_bytes - fs_bytes > GROW_THRESHOLD


def _volume_larger_than_filesystem(device: str, fs_type: str) -> bool:
    """Read when the step runs (after this run's mount)."""
    return volume_larger_than_filesystem(str(host.get_fact(Command, command=sizes_command(device, fs_type))))


def _mounted() -> bool:
    output = host.get_fact(Command, command=f"mountpoint -q {MOUNT} && echo yes || echo no")
    return str(output).strip() == "yes"
