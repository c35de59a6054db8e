"""pgBackRest's settings (nornos_infra/roles/pitr.py): what the host is given, and how the deploy
reads pgBackRest's own report."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from nornos_infra.roles import pitr

VALUES = {"object_storage_access_key": "AKEY", "object_storage_secret_key": "SECRET",
          "pgbackrest_cipher_pass": "CIPHER"}


def test_hetzners_endpoint_is_checked_against_the_public_pki() -> None:
    repo = pitr.repository_settings("https://fsn1.your-objectstorage.com", "nornos-dev-backups", "fsn1", "")
    assert repo["repo1-s3-endpoint"] == "fsn1.your-objectstorage.com" and repo["repo1-storage-port"] == "443"
    assert repo["repo1-s3-uri-style"] == "path" and repo["repo1-s3-region"] == "fsn1"
    assert "repo1-storage-verify-tls" not in repo and "repo1-storage-ca-file" not in repo


def test_a_named_endpoint_with_its_own_ca_is_checked_against_it() -> None:
    repo = pitr.repository_settings("https://s3.internal.example:8443", "b", "eu", "/etc/nornos/s3-ca.pem")
    assert (repo["repo1-s3-endpoint"], repo["repo1-storage-port"]) == ("s3.internal.example", "8443")
    assert repo["repo1-storage-ca-file"] == "/etc/nornos/s3-ca.pem" and "repo1-storage-verify-tls" not in repo


def test_an_ip_endpoint_cannot_be_checked_by_pgbackrest_2_45_and_the_file_says_so() -> None:
    repo = pitr.repository_settings("https://198.51.100.1", "b", "fsn1", "/etc/nornos/s3-ca.pem")
    assert repo["repo1-storage-verify-tls"] == "n" and "repo1-storage-ca-file" not in repo
    text = pitr.pgbackrest_conf("https://198.51.100.1", "b", "fsn1", "/etc/nornos/s3-ca.pem", VALUES)
    assert "cannot check a certificate against one" in text


def test_the_settings_file_encrypts_and_keeps_two_full_backups() -> None:
    text = pitr.pgbackrest_conf("https://fsn1.your-objectstorage.com", "b", "fsn1", "", VALUES)
    lines = text.splitlines()
    assert lines.index("[global]") < lines.index("[nornos]")
    for line in ("repo1-cipher-type=aes-256-cbc", "repo1-cipher-pass=CIPHER", "repo1-s3-key=AKEY",
                 "repo1-s3-key-secret=SECRET", "repo1-retention-full=2", "repo1-path=/pgbackrest",
                 "pg1-path=/mnt/postgres-data/pgdata"):
        assert line in lines, line


def test_archiving_every_segment_and_at_least_each_minute() -> None:
    text = pitr.archive_conf()
    assert "archive_mode = on" in text and "archive_timeout = 60" in text
    assert "archive_command = 'pgbackrest --stanza=nornos archive-push %p'" in text


def test_the_stanza_state_from_pgbackrests_report() -> None:
    missing = [{"name": "nornos", "status": {"code": 1, "message": "missing stanza path"}, "backup": []}]
    empty = [{"name": "nornos", "status": {"code": 2, "message": "no valid backups"}, "backup": []}]
    two = [{"name": "nornos", "status": {"code": 0, "message": "ok"}, "backup": [{"label": "a"}, {"label": "b"}]}]
    assert pitr.stanza_state(json.dumps(missing)) == (False, 0)
    assert pitr.stanza_state(json.dumps(empty)) == (True, 0)
    assert pitr.stanza_state(json.dumps(two)) == (True, 2)
    assert pitr.stanza_state("[]") == (False, 0)
    assert pitr.stanza_state("not json: pgbackrest failed") == (False, 0)


FAKE_RUNUSER = """#!/bin/bash
# stands in for `runuser -u postgres -- pgbackrest --stanza=nornos ARGS`: logs the call, answers from $STATE
shift 3; shift  # -u postgres -- pgbackrest
echo "$*" >> "$LOG"
case "$*" in
  *"info --output=json"*) cat "$STATE/info.json" ;;
  *check*) [ -f "$STATE/check-fails" ] && exit 1; exit 0 ;;
  *) exit 0 ;;
esac
"""


@pytest.mark.parametrize(("info", "check_fails", "calls", "said"), [
    ([], False, ["info", "stanza-create", "check", "info", "--type=full backup"], ""),
    # pgBackRest 2.45's own shape: status holds code, then lock and message
    ([{"backup": [], "name": "nornos", "status": {"code": 2, "message": "no valid backups"}}], False,
     ["info", "check", "info", "--type=full backup"], ""),
    ([{"backup": [{"label": "x"}], "name": "nornos", "status": {"code": 0, "message": "ok"}}], True,
     ["info", "check"], "backups of another PostgreSQL cluster"),
])
def test_the_first_backup_decides_on_the_host(tmp_path: Path, info: list[dict[str, object]], check_fails: bool,
                                              calls: list[str], said: str) -> None:
    """A new stanza and its first full backup; or, on a rebuilt server whose bucket holds another
    cluster's backups, nothing but one line (the bucket's history is never overwritten)."""
    (tmp_path / "runuser").write_text(FAKE_RUNUSER)
    (tmp_path / "runuser").chmod(0o755)
    (tmp_path / "info.json").write_text(json.dumps(info, separators=(",", ":")))
    if check_fails:
        (tmp_path / "check-fails").touch()
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "STATE": str(tmp_path),
           "LOG": str(tmp_path / "log")}
    proc = subprocess.run(["bash", "-c", pitr.first_backup_script()], env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    made = [line.removeprefix("--stanza=nornos ").removesuffix(" --output=json")
            for line in (tmp_path / "log").read_text().splitlines()]
    assert made == calls
    assert said in proc.stderr
