"""What the backup scripts are given (/etc/nornos/backup.env) and the bucket the env file names."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from nornos_infra import backup_bucket, spec
from nornos_infra.errors import UserError
from nornos_infra.roles.backups import OFFSITE_KEEP, backup_env

ROOT = Path(__file__).resolve().parents[2]


def _parsed(text: str) -> dict[str, str]:
    """KEY='value' lines as bash reads them."""
    pairs = (line.split("=", 1) for line in text.splitlines())
    return {key: "".join(shlex.split(value)) for key, value in pairs}


def test_a_bucket_without_a_key_stays_configured_so_the_upload_fails_visibly() -> None:
    settings = _parsed(backup_env("dev", {"backup_age_recipient": "age1x"}, "https://fsn1.your-objectstorage.com",
                                  "nornos-dev-backups"))
    assert settings["S3_BUCKET"] == "nornos-dev-backups", "never emptied: that turned offsite copies off silently"
    assert settings["S3_ACCESS_KEY"] == "" and settings["S3_CA_FILE"] == ""
    assert {k: int(settings[f"OFFSITE_KEEP_{k.upper()}"]) for k in OFFSITE_KEEP} == {"daily": 7, "weekly": 4,
                                                                                     "monthly": 6}


def test_values_are_quoted_for_the_shell() -> None:
    text = backup_env("dev", {"object_storage_secret_key": "a'b $c"}, "https://x", "b", "nbg1", "/etc/nornos/s3-ca.pem")
    settings = _parsed(text)
    assert settings["S3_SECRET_KEY"] == "a'b $c" and settings["S3_REGION"] == "nbg1"
    assert settings["S3_CA_FILE"] == "/etc/nornos/s3-ca.pem"


@pytest.mark.parametrize(("endpoint", "region", "expected"), [
    ("https://fsn1.your-objectstorage.com", "", "fsn1"),
    ("https://hel1.your-objectstorage.com/", "", "hel1"),
    ("https://198.51.100.1", "", "fsn1"),
    ("https://198.51.100.1:8443", "nbg1", "nbg1"),
])
def test_the_signing_region(endpoint: str, region: str, expected: str) -> None:
    assert spec.BackupsSpec(s3_endpoint=endpoint, s3_bucket="b", s3_region=region).region() == expected


def test_the_committed_envs_name_their_buckets(tmp_path: Path) -> None:
    for name in ("dev", "staging", "production"):
        env = spec.load(ROOT / "environments" / f"{name}.yaml")
        bucket = backup_bucket.for_env(env, ROOT / "environments")
        assert bucket is not None and bucket.name == f"nornos-{name}-backups" and bucket.lock_days == 30
        assert bucket.lifecycle()["Rules"][0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 31}


def test_a_missing_ca_file_is_one_line(tmp_path: Path) -> None:
    env = spec.load(ROOT / "environments" / "dev.yaml", {"backups": {"s3_ca_file": "no-such-ca.pem"}})
    with pytest.raises(UserError, match=r"backups.s3_ca_file: .*no-such-ca.pem does not exist"):
        backup_bucket.for_env(env, tmp_path)
