"""backups: a daily pg_dump at 03:00 (custom format, compressed) into
/mnt/postgres-data/backups, the newest 7 per database kept, checked to read back; a restore command; Redis
snapshots copied daily. When the env names a bucket (``backups.s3_bucket``), each copy is encrypted
with age on the host, to a recipient whose private key is not on the host, and uploaded over the S3
API (rclone) into ``<what>/daily/``; the first copy of each ISO week and month is also kept in
``weekly/`` and ``monthly/``, and each tier keeps its newest 7, 4 and 6 (OFFSITE_KEEP). The bucket's
object lock keeps every uploaded copy for its lock period whatever the host does.

A failed backup or upload exits non-zero, logs to the journal (tag nornos-backup), writes
/var/lib/nornos/backup.status.<what> and posts to Slack when ``slack_webhook_url`` is set in the
env's secrets.
"""

from __future__ import annotations

from pyinfra.context import host
from pyinfra.operations import files

from nornos_infra.paths import TEMPLATES
from nornos_infra.roles import context
from nornos_infra.roles.ops import apt_packages, apt_update, secret_file

BACKUP_DIR = "/mnt/postgres-data/backups"
REDIS_BACKUP_DIR = "/var/backups/redis"
KEEP_DAYS = 7
# offsite copies kept per tier: the newest 7 daily, 4 weekly and 6 monthly (docs/RUNBOOK.md)
OFFSITE_KEEP = {"daily": 7, "weekly": 4, "monthly": 6}
S3_CA_FILE = "/etc/nornos/s3-ca.pem"


def backup_env(env: str, values: dict[str, str], s3_endpoint: str, s3_bucket: str, s3_region: str = "fsn1",
               s3_ca_file: str = "") -> str:
    """/etc/nornos/backup.env: what the scripts need; 0600, uploaded without a diff. A bucket with
    no key in the secrets stays configured: the upload then fails, visibly, every night."""
    lines = {
        "NORNOS_ENV": env,
        "BACKUP_AGE_RECIPIENT": values.get("backup_age_recipient", ""),
        "S3_ENDPOINT": s3_endpoint,
        "S3_BUCKET": s3_bucket,
        "S3_REGION": s3_region,
        "S3_CA_FILE": s3_ca_file,
        "S3_ACCESS_KEY": values.get("object_storage_access_key", ""),
        "S3_SECRET_KEY": values.get("object_storage_secret_key", ""),
        "SLACK_WEBHOOK_URL": values.get("slack_webhook_url", ""),
        "KEEP_DAYS": str(KEEP_DAYS),
        **{f"OFFSITE_KEEP_{tier.upper()}": str(count) for tier, count in OFFSITE_KEEP.items()},
    }
    return "".join(f"{k}={_quote(v)}\n" for k, v in lines.items())


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _common(role: str) -> None:
    shared = context.current()
    env, values = shared.env, dict(shared.secrets)
    apt_update(name="Update apt lists", cache_time=6 * 3600)
    apt_packages(name="Backup tools (age, rclone)", packages=["age", "rclone", "curl"])
    files.directory(name="Backup settings directory", path="/etc/nornos", mode="700")
    files.directory(name="Backup status directory", path="/var/lib/nornos", mode="755")
    ca_file = host.data.get("backup_s3_ca_file")
    if ca_file:  # an endpoint outside the public PKI (localcloud's): its CA, for rclone alone
        files.put(name="Object Storage CA", src=str(ca_file), dest=S3_CA_FILE, mode="644")
    else:
        files.file(name="No Object Storage CA of our own", path=S3_CA_FILE, present=False)
    secret_file(name="Backup settings (secrets)", path="/etc/nornos/backup.env",
                content=backup_env(env, values, str(host.data.get("backup_s3_endpoint")),
                                   str(host.data.get("backup_s3_bucket")), str(host.data.get("backup_s3_region")),
                                   S3_CA_FILE if ca_file else ""))
    files.put(name="Backup helpers", src=str(TEMPLATES / "nornos-backup-lib.sh"),
              dest="/usr/local/lib/nornos-backup-lib.sh", mode="644")


@context.role("Backups: PostgreSQL")
def postgres_backups() -> None:
    _common("postgres")
    # made here, not only by the first nightly run: the audit rules watch it (a rule on a missing
    # directory stops auditctl, and with it the deploy); on the volume, which the postgres role
    # has mounted before (deploys/all.py runs it first)
    files.directory(name="Dump directory on the data volume", path=BACKUP_DIR, user="postgres", group="postgres",
                    mode="700")
    files.put(name="pg_dump script", src=str(TEMPLATES / "nornos-pg-backup"), dest="/usr/local/sbin/nornos-pg-backup",
              mode="755")
    files.put(name="Restore command", src=str(TEMPLATES / "nornos-pg-restore"),
              dest="/usr/local/sbin/nornos-pg-restore", mode="755")
    files.put(name="Daily at 03:00", src=str(TEMPLATES / "cron-nornos-pg-backup"), dest="/etc/cron.d/nornos-backup",
              mode="644")


@context.role("Backups: Redis")
def redis_backups() -> None:
    _common("redis")
    files.directory(name="Snapshot copy directory", path=REDIS_BACKUP_DIR, user="root", group="root", mode="700")
    files.put(name="Redis snapshot copy script", src=str(TEMPLATES / "nornos-redis-backup"),
              dest="/usr/local/sbin/nornos-redis-backup", mode="755")
    files.put(name="Daily at 03:30", src=str(TEMPLATES / "cron-nornos-redis-backup"),
              dest="/etc/cron.d/nornos-redis-backup", mode="644")
