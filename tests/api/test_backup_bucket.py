"""The backup bucket (``invoke bucket``, nornos_infra/backup_bucket.py) against localcloud's Object
Storage: a real S3 server over HTTPS, signed requests, object lock enforced.

Each test runs the command a person runs (``python -m nornos_infra.backup_bucket dev``) in a
project directory of its own, with the env's secrets in SOPS as a deploy finds them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from nornos_infra import overrides, secrets
from tests.conftest import TOKEN, LocalCloud, start_localcloud

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Project:
    dir: Path
    storage: dict[str, str]
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nornos_infra.backup_bucket", "dev", *args], cwd=self.dir,
                              env=self.env, capture_output=True, text=True, timeout=120, check=False)

    def s3(self, secret_key: str | None = None) -> Any:
        return boto3.client("s3", endpoint_url=self.storage["endpoint"], region_name=self.storage["region"],
                            aws_access_key_id=self.storage["access_key"],
                            aws_secret_access_key=secret_key or self.storage["secret_key"],
                            verify=self.storage["ca_file"])

    def set_secrets(self, **values: str) -> None:
        os.environ["SOPS_AGE_KEY_FILE"] = str(self.dir / "age.txt")
        secrets.update("dev", values, self.dir / "secrets")

    def set_env(self, **backups: Any) -> None:
        path = self.dir / "environments" / "dev.yaml"
        raw = yaml.safe_load(path.read_text())
        raw["backups"].update(backups)
        path.write_text(yaml.safe_dump(raw))


@pytest.fixture(scope="module")
def storage_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    # its own localcloud: the buckets made here never meet another test's
    lc = start_localcloud(tmp_path_factory.mktemp("objectstorage") / "state")
    try:
        yield lc
    finally:
        lc.stop()


@pytest.fixture
def project(tmp_path: Path, storage_cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> Project:
    (tmp_path / "environments").mkdir()
    shutil.copy(ROOT / "environments" / "dev.yaml", tmp_path / "environments" / "dev.yaml")
    storage = storage_cloud.side("GET", "objectstorage")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "age.txt"))
    secrets.init("dev", directory=tmp_path / "secrets", identity=tmp_path / "age.txt")
    settings = overrides.for_localcloud(storage_cloud.endpoint, "198.51.100.1", tmp_path / "id_ed25519",
                                        tmp_path / "secrets", tmp_path / "age.txt", storage)
    overrides.write(tmp_path / "overrides.yaml", settings)
    env = {**os.environ, "NORNOS_PROJECT_DIR": str(tmp_path), "NORNOS_OVERRIDES": str(tmp_path / "overrides.yaml"),
           "HCLOUD_ENDPOINT": storage_cloud.endpoint, "HCLOUD_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    made = Project(tmp_path, storage, env)
    made.set_secrets(object_storage_access_key=storage["access_key"], object_storage_secret_key=storage["secret_key"])
    return made


def _unique_bucket(project: Project, request: pytest.FixtureRequest) -> str:
    name = "nornos-" + request.node.name.replace("_", "-")[5:40].strip("-").lower()
    project.set_env(s3_bucket=name)
    return name


def test_the_side_door_names_an_https_endpoint_its_ca_and_a_key(storage_cloud: LocalCloud) -> None:
    info = storage_cloud.side("GET", "objectstorage")
    assert info["endpoint"].startswith("https://127.0.0.1:"), "API only: on loopback"
    assert Path(info["ca_file"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert len(info["access_key"]) == 20 and len(info["secret_key"]) == 40


def test_bucket_is_made_with_lock_versioning_and_expiry_then_left_alone(
        project: Project, request: pytest.FixtureRequest) -> None:
    name = _unique_bucket(project, request)
    dry = project.run("--dry-run")
    assert dry.returncode == 2, dry.stderr
    assert f"would create bucket {name} with object lock" in dry.stderr
    with pytest.raises(ClientError):
        project.s3().head_bucket(Bucket=name)  # the dry run made nothing
    made = project.run()
    assert made.returncode == 0, made.stderr
    assert f"create bucket {name} with object lock" in made.stderr
    assert "3 change(s) made" in made.stderr, made.stderr  # create (versioning comes with object lock), lock, expiry
    s3 = project.s3()
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    rule = s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert (rule["Mode"], rule["Days"]) == ("COMPLIANCE", 30)
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"][0]
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] == 31
    again = project.run()
    assert again.returncode == 0 and "no changes" in again.stderr, again.stderr
    assert project.run("--dry-run").returncode == 0, "nothing pending after the first run"


def test_a_locked_copy_cannot_be_erased_with_the_hosts_own_key(
        project: Project, request: pytest.FixtureRequest) -> None:
    name = _unique_bucket(project, request)
    assert project.run().returncode == 0
    s3 = project.s3()
    version = s3.put_object(Bucket=name, Key="postgres/app/daily/app.dump.age", Body=b"age...")["VersionId"]
    s3.delete_object(Bucket=name, Key="postgres/app/daily/app.dump.age")  # a delete marker: the copy stays
    with pytest.raises(ClientError) as refused:
        s3.delete_object(Bucket=name, Key="postgres/app/daily/app.dump.age", VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    kept = s3.get_object(Bucket=name, Key="postgres/app/daily/app.dump.age", VersionId=version)["Body"].read()
    assert kept == b"age..."


def test_drift_is_repaired_and_the_lock_period_follows_the_env_file(
        project: Project, request: pytest.FixtureRequest) -> None:
    name = _unique_bucket(project, request)
    assert project.run().returncode == 0
    project.s3().delete_bucket_lifecycle(Bucket=name)
    project.set_env(lock_days=90)
    plan = project.run("--dry-run")
    assert plan.returncode == 2
    assert "would lock every new copy for 90 days (compliance)" in plan.stderr
    assert "would expire replaced versions after their lock" in plan.stderr
    assert project.run().returncode == 0
    s3 = project.s3()
    assert s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]["Rule"]["DefaultRetention"][
        "Days"] == 90
    assert s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"][0]["NoncurrentVersionExpiration"][
        "NoncurrentDays"] == 91


def test_a_bucket_made_without_lock_is_refused_in_one_line(project: Project, request: pytest.FixtureRequest) -> None:
    name = _unique_bucket(project, request)
    project.s3().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "fsn1"})
    result = project.run()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "was made without object lock" in lines[-1], result.stderr
    assert "make a new bucket" in lines[-1]


@pytest.mark.parametrize(("values", "expected"), [
    ({"object_storage_access_key": ""}, "have no object_storage_access_key/object_storage_secret_key"),
    ({"object_storage_secret_key": "x" * 40}, "SignatureDoesNotMatch"),
    ({"object_storage_access_key": "NOTAKEYOFTHISSERVICE"}, "InvalidAccessKeyId"),
])
def test_a_bad_or_missing_key_is_one_line_and_nothing_is_made(
        project: Project, request: pytest.FixtureRequest, values: dict[str, str], expected: str) -> None:
    name = _unique_bucket(project, request)
    project.set_secrets(**values)
    result = project.run()
    assert result.returncode == 1
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert all(values[k] not in result.stderr for k in values if values[k]), "no key value in the message"
    with pytest.raises(ClientError):
        project.s3().head_bucket(Bucket=name)


def test_an_untrusted_certificate_is_refused(project: Project, request: pytest.FixtureRequest) -> None:
    _unique_bucket(project, request)
    from localcloud.objectstorage import ensure_certificates

    other_ca, _, _ = ensure_certificates(project.dir / "other", ["127.0.0.1"])  # a CA that signed nothing here
    settings = overrides.load(project.dir / "overrides.yaml")
    settings.settings["backups"]["s3_ca_file"] = str(other_ca)  # the overrides file is merged over the env file
    overrides.write(project.dir / "overrides.yaml", {"endpoint": settings.endpoint, **settings.settings})
    result = project.run()
    assert result.returncode == 1
    assert "cannot reach Object Storage" in result.stderr and "certificate" in result.stderr.lower(), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_no_bucket_named_means_offsite_off_said_once(project: Project) -> None:
    project.set_env(s3_bucket="")
    result = project.run()
    assert result.returncode == 0
    assert "names no backups.s3_bucket; offsite copies are off" in result.stderr
