"""``invoke restore``: bring PostgreSQL data back.

- ``--to TIME``: the whole cluster back to that moment (point-in-time recovery from the env's
  bucket, pgBackRest; the host script ``nornos-pitr-restore`` written by nornos_infra/roles/pitr.py).
  Every database goes back; the data directory as it was is kept beside it on the volume.
- ``--db NAME [--from latest|FILE|offsite]``: one database from a nightly dump (``nornos-pg-restore``):
  the newest dump on the host (``latest``, the default), a dump file on the host (its path), or the
  newest copy in the bucket (``offsite``). The offsite copy is decrypted here, with
  ``backup_age_identity`` from the env's secrets, and streamed to the host: the private key never
  reaches a host.

Both replace data, so both need ``--yes``; without it nothing is touched.
"""

from __future__ import annotations

import datetime
import io
import re
from pathlib import Path

from nornos_infra import host_command, inventory, secrets
from nornos_infra.errors import UserError
from nornos_infra.host_command import Result

TIMEOUT = 6 * 3600.0  # seconds: a large cluster's restore and WAL replay
DB_RE = re.compile(r"[a-z_][a-z0-9_]*")
BACKUPS = "/mnt/postgres-data/backups"


def parse_time(text: str) -> str:
    """``YYYY-MM-DD HH:MM[:SS]`` (UTC) or with an offset, as pgBackRest's --target takes it;
    ``latest``: everything the archive holds (after losing the server)."""
    if text.strip() == "latest":
        return "latest"
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(f"--to {text!r}: give a time such as \"2026-12-01 10:15\" (UTC), "
                        "\"2026-12-01 10:15:30+01:00\", or latest") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
    if moment > datetime.datetime.now(datetime.UTC):
        raise UserError(f"--to {text!r} is in the future: nothing has been archived for it yet")
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S+00")


def _postgres(inventory_file: Path) -> inventory.Host:
    hosts = inventory.load(inventory_file).hosts("postgres")
    if not hosts:
        raise UserError(f"{inventory_file} has no postgres host; run provision.py and deploys/all.py first")
    return hosts[0]


def to_time(inventory_file: Path, when: str, yes: bool) -> Result:
    target = parse_time(when)
    if not yes:
        raise UserError(f"--to {when!r} replaces every database with its state at {target}; nothing was changed: "
                        "re-run with --yes")
    host = _postgres(inventory_file)
    script = "/usr/local/sbin/nornos-pitr-restore"
    outcome = host_command.run(host, f"test -x {script} || exit 127; {script} --yes '{target}'", TIMEOUT)
    output = outcome.output if outcome.status != 127 else \
        f"{script} is not there: point-in-time recovery needs backups.s3_bucket and a deploy"
    return Result(host.name, f"cluster to {target}", outcome.status, output)


def database(inventory_file: Path, env: str, db: str, source: str, yes: bool) -> Result:
    if not DB_RE.fullmatch(db):
        raise UserError(f"--db {db!r} is not a database name")
    if not yes:
        raise UserError(f"--db {db} replaces that database's objects with the dump's; nothing was changed: "
                        "re-run with --yes")
    if source not in ("latest", "offsite") and not re.fullmatch(r"[A-Za-z0-9_./-]+", source):
        raise UserError(f"--from {source!r}: give latest, offsite or a dump file's path on the host")
    host = _postgres(inventory_file)
    if source == "offsite":
        return _from_offsite(host, env, db)
    if source == "latest":
        file = f"$(ls -1 {BACKUPS}/{db}-*.dump 2>/dev/null | sort | tail -n 1)"
        command = f"f={file}; [ -n \"$f\" ] || {{ echo 'no dump of {db} in {BACKUPS}' >&2; exit 1; }}; " \
                  f"nornos-pg-restore --yes --db {db} \"$f\""
    else:
        command = f"nornos-pg-restore --yes --db {db} '{source}'"
    outcome = host_command.run(host, command, TIMEOUT)
    return Result(host.name, f"database {db} from {source}", outcome.status, outcome.output)


def _from_offsite(host: inventory.Host, env: str, db: str) -> Result:
    """The newest daily copy in the bucket, decrypted here, streamed into a 0600 file on the host's
    volume, restored, removed."""
    from pyrage import DecryptError, decrypt, x25519

    from nornos_infra.backup_bucket import Bucket

    data = host.data
    bucket = Bucket(str(data.get("backup_s3_endpoint") or ""), str(data.get("backup_s3_bucket") or ""),
                    str(data.get("backup_s3_region") or "fsn1"), data.get("backup_s3_ca_file"), 1)
    if not bucket.name:
        raise UserError("--from offsite: the env names no backups.s3_bucket")
    values = secrets.load(env)
    client = bucket.client(values.get("object_storage_access_key") or "", values.get("object_storage_secret_key") or "")
    prefix = f"postgres/{db}/daily/"
    listing = client.list_objects_v2(Bucket=bucket.name, Prefix=prefix).get("Contents", [])
    if not listing:
        raise UserError(f"--from offsite: no copy of {db} in bucket {bucket.name} ({prefix})")
    key = max(item["Key"] for item in listing)
    sealed = client.get_object(Bucket=bucket.name, Key=key)["Body"].read()
    try:
        plain = decrypt(sealed, [x25519.Identity.from_str(values["backup_age_identity"])])
    except DecryptError:
        raise UserError(f"{key} does not open with this env's backup_age_identity") from None
    name = key.rsplit("/", 1)[1].removesuffix(".age")
    command = (f"set -e; f=$(mktemp {BACKUPS}/offsite.XXXXXX); trap 'rm -f \"$f\"' EXIT; cat > \"$f\"; "
               f"chown postgres \"$f\"; nornos-pg-restore --yes --db {db} \"$f\"")
    outcome = host_command.run(host, command, TIMEOUT, stdin=io.BytesIO(plain))
    return Result(host.name, f"database {db} from {bucket.name}/{key} ({name})", outcome.status, outcome.output)
