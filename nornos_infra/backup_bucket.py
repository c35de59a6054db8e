"""``invoke bucket --env E [--dry-run]``: the env's offsite backup bucket on Object Storage.

Hetzner Object Storage speaks the S3 API (there is no hcloud endpoint for buckets), so this step
is not part of provision.py's plan; ``invoke deploy`` runs it before the hosts are configured.
It makes the bucket the env file names (``backups.s3_bucket``) what the backups rely on:

- it exists, made with **object lock** (only possible when a bucket is created);
- **versioning** is on: a deleted or overwritten copy stays as an older version;
- the default retention is **compliance** mode for ``backups.lock_days``: no key, not even the
  one on the hosts, can delete or overwrite a copy before then, so a compromised host cannot
  erase the history;
- a **lifecycle** rule removes versions the backup retention has replaced once their lock has
  run out, and unfinished multipart uploads after a week.

The S3 key comes from the env's SOPS secrets (``object_storage_access_key`` and
``object_storage_secret_key``), never from the command line or the environment. A second run
changes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nornos_infra import console, paths, secrets, spec
from nornos_infra.errors import SpecError, UserError
from nornos_infra.spec.model import resolve_path

LIFECYCLE_RULE = "nornos-expire-replaced-versions"
ABORT_MULTIPART_DAYS = 7


@dataclass(frozen=True)
class Bucket:
    endpoint: str
    name: str
    region: str
    ca_file: str | None
    lock_days: int

    def client(self, access_key: str, secret_key: str) -> Any:
        import boto3
        from botocore.config import Config

        # path-style requests: they work with every endpoint (an IP address too); Hetzner takes both
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                            verify=self.ca_file or True,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3},
                                          connect_timeout=10, read_timeout=60))

    def lifecycle(self) -> dict[str, Any]:
        return {"Rules": [{
            "ID": LIFECYCLE_RULE, "Status": "Enabled", "Filter": {"Prefix": ""},
            # a version the retention replaced is kept until its lock has run out, then removed
            "NoncurrentVersionExpiration": {"NoncurrentDays": self.lock_days + 1},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
        }]}


def for_env(env: spec.EnvSpec, env_dir: Path) -> Bucket | None:
    """The env file's bucket, or None when it names none (offsite copies off)."""
    backups = env.backups
    if not backups.s3_bucket:
        return None
    ca_file = None
    if backups.s3_ca_file:
        ca_path = resolve_path(backups.s3_ca_file, env_dir)
        if not ca_path.is_file():
            raise UserError(f"backups.s3_ca_file: {ca_path} does not exist; fix the path in the env file")
        ca_file = str(ca_path)
    return Bucket(backups.s3_endpoint, backups.s3_bucket, backups.region(), ca_file, backups.lock_days)


def credentials(env: spec.EnvSpec, env_dir: Path) -> tuple[str, str]:
    """The S3 key from the env's secrets (where the env file's ``sops`` says, as a deploy finds
    them); a missing one is the user's to add, in one line."""
    if env.sops.age_key_file:
        os.environ["SOPS_AGE_KEY_FILE"] = str(resolve_path(env.sops.age_key_file, env_dir))
    values = secrets.load(env.name, resolve_path(env.sops.dir, env_dir) if env.sops.dir else None)
    env_name = env.name
    access, secret = values.get("object_storage_access_key", ""), values.get("object_storage_secret_key", "")
    if not access or not secret:
        raise UserError(f"the env's secrets have no object_storage_access_key/object_storage_secret_key: create an "
                        f"S3 key for the project (Hetzner Console, Object Storage) and add both with `invoke "
                        f"secrets.edit --env {env_name}`, or set backups.s3_bucket: \"\" in the env file to run "
                        "without offsite copies")
    return access, secret


def ensure(bucket: Bucket, client: Any, dry_run: bool, say: Callable[[str], None]) -> list[str]:
    """Bring the bucket to what the backups rely on; the changes made (or, dry, that would be)."""
    from botocore.exceptions import ClientError

    verb = "would " if dry_run else ""
    changes: list[str] = []

    def change(what: str, action: Callable[[], Any]) -> None:
        changes.append(what)
        say(f"{verb}{what}")
        if not dry_run:
            action()

    exists = _exists(bucket, client)
    if not exists:
        change(f"create bucket {bucket.name} with object lock", lambda: client.create_bucket(
            Bucket=bucket.name, ObjectLockEnabledForBucket=True,
            CreateBucketConfiguration={"LocationConstraint": bucket.region}))
        if dry_run:  # nothing to read back from a bucket that does not exist yet
            changes += ["turn on versioning", f"lock every new copy for {bucket.lock_days} days (compliance)",
                        "expire replaced versions after their lock"]
            for line in changes[1:]:
                say(f"{verb}{line}")
            return changes
    if client.get_bucket_versioning(Bucket=bucket.name).get("Status") != "Enabled":
        change("turn on versioning", lambda: client.put_bucket_versioning(
            Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}))
    wanted_lock = {"ObjectLockEnabled": "Enabled",
                   "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": bucket.lock_days}}}
    try:
        lock = client.get_object_lock_configuration(Bucket=bucket.name)["ObjectLockConfiguration"]
    except ClientError as exc:
        if _code(exc) != "ObjectLockConfigurationNotFoundError":
            raise
        raise UserError(f"bucket {bucket.name} was made without object lock, which can only be turned on when a "
                        "bucket is created: its copies could be deleted by any holder of the key; make a new "
                        "bucket (a new backups.s3_bucket) and let this step create it") from None
    retention = lock.get("Rule", {}).get("DefaultRetention", {})
    if (retention.get("Mode"), retention.get("Days")) != ("COMPLIANCE", bucket.lock_days):
        change(f"lock every new copy for {bucket.lock_days} days (compliance)",
               lambda: client.put_object_lock_configuration(Bucket=bucket.name, ObjectLockConfiguration=wanted_lock))
    try:
        rules = client.get_bucket_lifecycle_configuration(Bucket=bucket.name).get("Rules", [])
    except ClientError as exc:
        if _code(exc) != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    if _lifecycle_differs(rules, bucket.lifecycle()["Rules"][0]):
        change("expire replaced versions after their lock", lambda: client.put_bucket_lifecycle_configuration(
            Bucket=bucket.name, LifecycleConfiguration=bucket.lifecycle()))
    return changes


def _exists(bucket: Bucket, client: Any) -> bool:
    from botocore.exceptions import ClientError

    # the key's own buckets first: a wrong key is named for what it is (HEAD answers a bare 403)
    if bucket.name in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        return True
    try:
        client.head_bucket(Bucket=bucket.name)
        return True
    except ClientError as exc:
        code = _code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return False
        if code in ("403", "AccessDenied"):
            raise UserError(f"bucket {bucket.name} exists but this key may not use it (bucket names are shared by "
                            "every customer of the service): choose another backups.s3_bucket") from None
        raise


def _lifecycle_differs(rules: list[dict[str, Any]], wanted: dict[str, Any]) -> bool:
    mine = next((r for r in rules if r.get("ID") == LIFECYCLE_RULE), None)
    if mine is None:
        return True
    return any(mine.get(key) != wanted[key] for key in
               ("Status", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"))


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def run(env_name: str, env_dir: Path, dry_run: bool) -> int:
    """The task: 0 when the bucket is (or, dry, already was) as wanted; 2 dry with changes pending."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        env = spec.load(env_dir / f"{env_name}.yaml", *_overrides())
        bucket = for_env(env, env_dir)
        if bucket is None:
            console.err.print(f"bucket: {env_name} names no backups.s3_bucket; offsite copies are off")
            return 0
        client = bucket.client(*credentials(env, env_dir))
        changes = ensure(bucket, client, dry_run, lambda line: console.err.print(f"  {line}"))
    except SpecError as exc:
        for problem in exc.problems:
            console.fail(f"{exc.source}: {problem}")
        return 1
    except UserError as exc:
        console.fail(f"bucket: {exc}")
        return 1
    except ClientError as exc:
        console.fail(f"bucket: Object Storage refused a request: {_code(exc)}: "
                     f"{exc.response.get('Error', {}).get('Message', '')}; nothing after it was changed")
        return 1
    except BotoCoreError as exc:  # unreachable endpoint, bad certificate
        console.fail(f"bucket: cannot reach Object Storage at {env.backups.s3_endpoint}: {exc}")
        return 1
    state = "no changes" if not changes else f"{len(changes)} change(s){' pending' if dry_run else ' made'}"
    console.err.print(f"bucket {bucket.name} at {bucket.endpoint}: {state} (versioning, object lock "
                      f"{bucket.lock_days} days, compliance)")
    return 2 if dry_run and changes else 0


def _overrides() -> tuple[dict[str, Any] | None, str]:
    from nornos_infra import overrides

    extra = overrides.from_environment()
    return (extra.settings, str(extra.source)) if extra else (None, "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nornos_infra.backup_bucket", description=__doc__.split("\n")[0])
    parser.add_argument("env", help="environment (environments/<env>.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="say what would change; change nothing")
    args = parser.parse_args(argv)
    return run(args.env, paths.environments_dir(), args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
