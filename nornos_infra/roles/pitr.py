"""pitr: point-in-time recovery of PostgreSQL with pgBackRest (Debian 12's 2.45), into the env's
backup bucket (``backups.s3_bucket``, under ``pgbackrest/``):

- every WAL segment is archived as PostgreSQL finishes it, and at least once a minute
  (``archive_timeout``): the recovery point is a minute or less;
- a full backup every Sunday at 01:15, a differential one every other night; the newest
  RETENTION_FULL full backups are kept, with every WAL needed to reach any moment since the
  oldest;
- pgBackRest encrypts everything it writes (aes-256-cbc) with ``pgbackrest_cipher_pass`` from
  the env's secrets, and checks a checksum of every file; S3 requests carry Content-MD5, which a
  bucket with object lock requires;
- the first full backup is taken by the deploy that turns archiving on, so the env can be
  recovered from the first deploy on.

``invoke restore --env E --to TIME`` brings the cluster back to a moment (nornos_infra/restore.py).
A failed scheduled backup is reported like the nightly dumps: exit status, journal (tag
nornos-backup), /var/lib/nornos/backup.status.pitr and Slack.
"""

from __future__ import annotations

import ipaddress
import json
from io import StringIO
from urllib.parse import urlsplit

from pyinfra.context import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server, systemd

from nornos_infra.paths import TEMPLATES
from nornos_infra.roles import context
from nornos_infra.roles.backups import S3_CA_FILE
from nornos_infra.roles.ops import apt_packages, secret_file
from nornos_infra.roles.postgres import CONF_DIR, DATA_DIR, SERVICE

STANZA = "nornos"
CONF = "/etc/pgbackrest/pgbackrest.conf"
REPO_PATH = "/pgbackrest"
RETENTION_FULL = 2  # two weekly full backups: any moment of the last one to two weeks
ARCHIVE_TIMEOUT = 60  # seconds: a quiet database still ships its WAL every minute
ARCHIVE_CONF = f"{CONF_DIR}/conf.d/60-nornos-archive.conf"
PGBACKREST = f"runuser -u postgres -- pgbackrest --stanza={STANZA}"


def repository_settings(endpoint: str, bucket: str, region: str, ca_file: str) -> dict[str, str]:
    """pgBackRest's repo1-* settings for an S3 endpoint URL (path-style requests, as everywhere in
    this project). pgBackRest 2.45 matches a certificate against host names only, never against
    an IP address: an endpoint given as an IP address (localcloud's) is reached with its
    certificate unchecked, and said so in the file."""
    parts = urlsplit(endpoint)
    host_name = parts.hostname or ""
    settings = {
        "repo1-type": "s3",
        "repo1-path": REPO_PATH,
        "repo1-s3-endpoint": host_name,
        "repo1-s3-bucket": bucket,
        "repo1-s3-region": region,
        "repo1-s3-uri-style": "path",
        "repo1-storage-port": str(parts.port or 443),
    }
    try:
        ipaddress.ip_address(host_name)
        settings["repo1-storage-verify-tls"] = "n"
    except ValueError:
        if ca_file:
            settings["repo1-storage-ca-file"] = ca_file
    return settings


def pgbackrest_conf(endpoint: str, bucket: str, region: str, ca_file: str, values: dict[str, str]) -> str:
    """/etc/pgbackrest/pgbackrest.conf (0640 root:postgres: it holds the S3 key and the cipher)."""
    repo = repository_settings(endpoint, bucket, region, ca_file)
    unchecked = "repo1-storage-verify-tls" in repo
    lines = ["# managed by nornos-infra: point-in-time recovery (nornos_infra/roles/pitr.py)"]
    if unchecked:
        lines.append("# the endpoint is an IP address: pgBackRest 2.45 cannot check a certificate against one")
    lines.append("[global]")
    lines += [f"{key}={value}" for key, value in repo.items()]
    lines += [
        f"repo1-s3-key={values['object_storage_access_key']}",
        f"repo1-s3-key-secret={values['object_storage_secret_key']}",
        "repo1-cipher-type=aes-256-cbc",
        f"repo1-cipher-pass={values['pgbackrest_cipher_pass']}",
        f"repo1-retention-full={RETENTION_FULL}",
        "repo1-retention-full-type=count",
        "compress-type=zst",
        "start-fast=y",
        "process-max=2",
        "log-level-console=warn",
        "log-level-file=info",
        "",
        f"[{STANZA}]",
        f"pg1-path={DATA_DIR}",
        "pg1-port=5432",
        "pg1-socket-path=/var/run/postgresql",
        "",
    ]
    return "\n".join(lines)


def archive_conf() -> str:
    return "\n".join([
        "# managed by nornos-infra: every WAL segment to the env's bucket (pgBackRest), at least each minute",
        "archive_mode = on",
        f"archive_command = 'pgbackrest --stanza={STANZA} archive-push %p'",
        f"archive_timeout = {ARCHIVE_TIMEOUT}",
        "",
    ])


def first_backup_script() -> str:
    """Create the stanza and take the first full backup, unless the bucket already holds backups.
    Backups of another cluster (this server was rebuilt after a loss) are left alone and said:
    pgBackRest then refuses this cluster's WAL until ``invoke restore --to latest`` brings the
    bucket's cluster back."""
    return "\n".join([
        "set -e",
        f"info=$({PGBACKREST} info --output=json 2>/dev/null || echo '[]')",
        "if printf '%s' \"$info\" | grep -q '\"status\":{\"code\":[02],'; then",
        f"    if ! {PGBACKREST} check >/dev/null 2>&1; then",
        "        echo 'nornos: the bucket holds backups of another PostgreSQL cluster (this server was rebuilt?):"
        " left alone; its WAL is not archived until `invoke restore --to latest` brings that cluster back' >&2",
        "        exit 0",
        "    fi",
        "else",
        f"    {PGBACKREST} stanza-create",
        f"    {PGBACKREST} check",
        "fi",
        f"{PGBACKREST} info --output=json | grep -q '\"backup\":\\[{{' || {PGBACKREST} --type=full backup",
    ])


def stanza_state(info_json: str) -> tuple[bool, int]:
    """(the stanza exists, its number of backups) from ``pgbackrest info --output=json``."""
    try:
        stanzas = json.loads(info_json)
    except ValueError:
        return False, 0
    mine = next((s for s in stanzas if s.get("name") == STANZA), None)
    if mine is None or mine.get("status", {}).get("code") not in (0, 2):  # 2: no backups yet
        return False, 0
    return True, len(mine.get("backup", []))


@context.role("Point-in-time recovery (pgBackRest)")
def pitr() -> None:
    shared = context.current()
    bucket = str(host.data.get("backup_s3_bucket") or "")
    if not bucket:
        files.file(name="No WAL archiving (no bucket)", path=ARCHIVE_CONF, present=False)
        return
    values = dict(shared.secrets)
    missing = [k for k in ("object_storage_access_key", "object_storage_secret_key", "pgbackrest_cipher_pass")
               if not values.get(k)]
    if missing:
        from pyinfra.api.exceptions import OperationError

        raise OperationError(f"point-in-time recovery needs {', '.join(missing)} in the env's secrets: add the S3 "
                             f"key with `invoke secrets.edit --env {shared.env}` and the generated values with "
                             f"`invoke secrets.fill --env {shared.env}`")
    apt_packages(name="pgBackRest", packages=["pgbackrest"])
    files.directory(name="pgBackRest settings directory", path="/etc/pgbackrest", mode="750", user="root",
                    group="postgres")
    ca_file = S3_CA_FILE if host.data.get("backup_s3_ca_file") else ""
    secret_file(name="pgBackRest settings (secrets)", path=CONF, mode="640", user="root", group="postgres",
                content=pgbackrest_conf(str(host.data.get("backup_s3_endpoint")), bucket,
                                        str(host.data.get("backup_s3_region")), ca_file, values))
    for path in ("/var/log/pgbackrest", "/var/spool/pgbackrest", "/tmp/pgbackrest"):
        files.directory(name=f"pgBackRest {path}", path=path, mode="750", user="postgres", group="postgres")
    archiving = files.put(name="PostgreSQL archives its WAL", src=StringIO(archive_conf()), dest=ARCHIVE_CONF,
                          user="postgres", group="postgres", mode="644")
    # archive_mode takes effect on a restart only
    systemd.service(name="PostgreSQL: restart to archive", service=SERVICE, restarted=True,
                    _if=archiving.did_change)
    exists, backups = stanza_state(host.get_fact(
        Command, command=f"{PGBACKREST} info --output=json 2>/dev/null || echo '[]'") or "[]")
    if not (exists and backups):
        # decided on the host when it runs: on a new server pgBackRest is not even installed when the
        # facts are read, and a server rebuilt after a loss finds another cluster's backups there
        server.shell(name="pgBackRest: the stanza, archiving checked, a first full backup",
                     commands=[first_backup_script()])
    files.put(name="Restore to a moment (invoke restore --to)", src=str(TEMPLATES / "nornos-pitr-restore"),
              dest="/usr/local/sbin/nornos-pitr-restore", mode="755")
    files.put(name="Scheduled backup script", src=str(TEMPLATES / "nornos-pitr-backup"),
              dest="/usr/local/sbin/nornos-pitr-backup", mode="755")
    files.put(name="Full on Sundays, differential other nights, at 01:15", src=str(TEMPLATES / "cron-nornos-pitr"),
              dest="/etc/cron.d/nornos-pitr", mode="644")
