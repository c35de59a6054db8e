"""Secrets with the real sops binary and real age keys (no network)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nornos_infra import secrets
from nornos_infra.errors import UserError


@pytest.fixture
def keyfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "age" / "keys.txt"
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(path))
    return path


def test_init_encrypts_strong_values_and_load_decrypts(tmp_path: Path, keyfile: Path) -> None:
    directory = tmp_path / "secrets"
    target = secrets.init("dev", directory)
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
    text = target.read_text()
    assert "ENC[AES256_GCM" in text and "age1" in text
    loaded = secrets.load("dev", directory)
    for name in secrets.GENERATED:
        assert len(loaded[name]) >= 40 and loaded[name] not in text  # never in clear text on disk
    assert loaded["backup_age_recipient"].startswith("age1")
    assert loaded["hcloud_token"] == ""
    assert len({loaded[n] for n in secrets.GENERATED}) == len(secrets.GENERATED)
    assert "***" in repr(loaded) and loaded["redis_password"] not in repr(loaded)
    assert (directory / ".sops.yaml").read_text().count("age1") == 1


def test_init_never_overwrites(tmp_path: Path, keyfile: Path) -> None:
    secrets.init("dev", tmp_path)
    before = (tmp_path / "dev.sops.yaml").read_text()
    with pytest.raises(UserError, match="never overwritten"):
        secrets.init("dev", tmp_path)
    assert (tmp_path / "dev.sops.yaml").read_text() == before


def test_a_machine_without_the_key_cannot_decrypt(tmp_path: Path, keyfile: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    secrets.init("dev", tmp_path)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "other" / "keys.txt"))
    secrets.ensure_identity()
    with pytest.raises(UserError, match="sops decrypt failed"):
        secrets.load("dev", tmp_path)


def test_missing_file_and_missing_value_are_clear(tmp_path: Path, keyfile: Path) -> None:
    with pytest.raises(UserError, match=r"secrets\.init --env staging"):
        secrets.load("staging", tmp_path)
    secrets.init("dev", tmp_path, values={"k3s_token": "x" * 64})
    loaded = secrets.load("dev", tmp_path)
    with pytest.raises(UserError, match="has no 'redis_password'"):
        loaded["redis_password"]


def test_second_env_reuses_the_recipients(tmp_path: Path, keyfile: Path) -> None:
    secrets.init("dev", tmp_path)
    secrets.init("staging", tmp_path)
    assert secrets.recipients(tmp_path) == [secrets.ensure_identity()]
    assert secrets.load("staging", tmp_path)["k3s_token"] != secrets.load("dev", tmp_path)["k3s_token"]


def test_a_deploy_finds_secrets_where_its_inventory_says(tmp_path: Path, keyfile: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside pyinfra the inventory's sops_dir / sops_age_key_file win (the bare command needs no
    variables); outside a deploy the variables and defaults apply as before."""
    from types import SimpleNamespace

    from pyinfra.context import ctx_host

    demo = tmp_path / "lc"
    secrets.init("dev", demo / "secrets", identity=demo / "age.txt")
    assert not keyfile.exists(), "the given identity, not $SOPS_AGE_KEY_FILE"
    monkeypatch.setenv("NORNOS_SECRETS_DIR", str(tmp_path / "elsewhere"))
    host = SimpleNamespace(data={"sops_dir": str(demo / "secrets"), "sops_age_key_file": str(demo / "age.txt")})
    with ctx_host.use(host):
        assert secrets.secrets_dir() == demo / "secrets" and secrets.age_key_file() == demo / "age.txt"
        assert len(secrets.load("dev")["k3s_token"]) == 64
    with ctx_host.use(SimpleNamespace(data={"sops_dir": None})):
        assert secrets.secrets_dir() == tmp_path / "elsewhere" and secrets.age_key_file() == keyfile
    assert secrets.secrets_dir() == tmp_path / "elsewhere" and secrets.age_key_file() == keyfile


def test_update_sets_only_what_differs_and_never_in_clear_text(tmp_path: Path, keyfile: Path) -> None:
    secrets.init("dev", tmp_path)
    before = secrets.load("dev", tmp_path)
    changed = secrets.update("dev", {"object_storage_access_key": "AKEYOFTWENTYCHARS123",
                                     "redis_password": before["redis_password"]}, tmp_path)
    assert changed == ["object_storage_access_key"], "a key already holding the value is left alone"
    after = secrets.load("dev", tmp_path)
    assert after["object_storage_access_key"] == "AKEYOFTWENTYCHARS123"
    assert {k: after[k] for k in after if k != "object_storage_access_key"} == \
        {k: before[k] for k in before if k != "object_storage_access_key"}
    assert "AKEYOFTWENTYCHARS123" not in (tmp_path / "dev.sops.yaml").read_text()
    assert secrets.update("dev", {"object_storage_access_key": "AKEYOFTWENTYCHARS123"}, tmp_path) == []


def test_fill_adds_what_a_newer_version_generates_and_keeps_the_rest(tmp_path: Path, keyfile: Path) -> None:
    old = {k: v for k, v in secrets.generate().items() if k != "pgbackrest_cipher_pass"}  # made before it existed
    secrets.init("dev", tmp_path, values=old)
    assert secrets.fill("dev", tmp_path) == ["pgbackrest_cipher_pass"]
    after = secrets.load("dev", tmp_path)
    assert len(after["pgbackrest_cipher_pass"]) >= 40
    assert {k: after[k] for k in old} == old, "no existing value changed"
    assert secrets.fill("dev", tmp_path) == [], "a second run adds nothing"
