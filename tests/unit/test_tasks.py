"""tasks.py's decisions: whether a task starts localcloud (never when you point at a cloud of your
own), and where the tasks outside pyinfra find an env's secrets (where its inventory says)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import tasks


@pytest.mark.parametrize(("environ", "real"), [
    ({}, False),
    ({"HCLOUD_TOKEN": ""}, False),
    ({"HCLOUD_TOKEN": "t"}, True),
    ({"HCLOUD_ENDPOINT": "https://api.hetzner.cloud/v1"}, True),
    ({"HCLOUD_ENDPOINT": "http://127.0.0.1:8700/v1"}, True),  # set by hand: that one, not a new one
    ({"HCLOUD_TOKEN": "t", "HCLOUD_ENDPOINT": "https://api.hetzner.cloud/v1"}, True),
])
def test_real_cloud(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], real: bool) -> None:
    for var in ("HCLOUD_TOKEN", "HCLOUD_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    for var, value in environ.items():
        monkeypatch.setenv(var, value)
    assert tasks._real_cloud() is real


def test_a_cloud_of_your_own_never_starts_localcloud(monkeypatch: pytest.MonkeyPatch) -> None:
    from localcloud import control

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("localcloud started although HCLOUD_TOKEN is set")

    monkeypatch.setattr(control, "up", refuse)
    monkeypatch.setenv("HCLOUD_TOKEN", "a-real-token")
    monkeypatch.delenv("HCLOUD_ENDPOINT", raising=False)
    assert tasks._localcloud_env(None, real_hosts=True) == {}  # type: ignore[arg-type]


def test_without_a_cloud_localcloud_is_started_api_only_unless_real_hosts_can_run(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from localcloud import control
    from localcloud.hosts import system

    started: list[list[str]] = []
    running = control.Running(4242, "http://127.0.0.1:8799/v1", "tok", tmp_path)

    def up(state: Path, extra: list[str] | None = None, **kwargs: Any) -> control.Running:
        started.append(list(extra or []))
        return running

    monkeypatch.setattr(control, "up", up)
    monkeypatch.setattr(tasks, "_localcloud_vars", lambda r: {**r.env, "MARK": "vars"})
    for var in ("HCLOUD_TOKEN", "HCLOUD_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(system, "why_unsupported", lambda: "real hosts need root")
    env = tasks._localcloud_env(None, real_hosts=True)  # type: ignore[arg-type]
    assert env == {"HCLOUD_ENDPOINT": "http://127.0.0.1:8799/v1", "HCLOUD_TOKEN": "tok", "MARK": "vars"}
    monkeypatch.setattr(system, "why_unsupported", lambda: None)
    tasks._localcloud_env(None, real_hosts=False)  # type: ignore[arg-type]
    tasks._localcloud_env(None, real_hosts=True)  # type: ignore[arg-type]
    assert started == [[], [], ["--hosts", "nspawn"]]


def _inventory(tmp_path: Path, common: dict[str, Any] | None) -> Path:
    path = tmp_path / "inventories" / "dev.py"
    path.parent.mkdir(parents=True)
    text = "k3s_servers = ([], {})\n" + (f"_common = {common!r}\n" if common is not None else "")
    path.write_text(text)
    return path


@pytest.mark.parametrize(("common", "expected"), [
    ({"sops_dir": "/x/secrets", "sops_age_key_file": "/x/age.txt"},
     {"NORNOS_SECRETS_DIR": "/x/secrets", "SOPS_AGE_KEY_FILE": "/x/age.txt"}),
    ({"sops_dir": "/x/secrets", "sops_age_key_file": None}, {"NORNOS_SECRETS_DIR": "/x/secrets",
                                                             "SOPS_AGE_KEY_FILE": "from-the-shell"}),
    ({"sops_dir": None}, {"NORNOS_SECRETS_DIR": None, "SOPS_AGE_KEY_FILE": "from-the-shell"}),
    (None, {"NORNOS_SECRETS_DIR": None, "SOPS_AGE_KEY_FILE": "from-the-shell"}),
])
def test_secrets_are_found_where_the_inventory_says(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    common: dict[str, Any] | None,
                                                    expected: dict[str, str | None]) -> None:
    inventory = _inventory(tmp_path, common)
    monkeypatch.setattr(tasks, "_inventory", lambda env: inventory if env == "dev" else tmp_path / "none.py")
    monkeypatch.delenv("NORNOS_SECRETS_DIR", raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", "from-the-shell")
    tasks._use_inventory_secrets("dev")
    assert {k: os.environ.get(k) for k in expected} == expected


def test_no_inventory_changes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tasks, "_inventory", lambda env: tmp_path / "missing.py")
    monkeypatch.setenv("NORNOS_SECRETS_DIR", "/mine")
    monkeypatch.delenv("SOPS_AGE_KEY_FILE", raising=False)
    tasks._use_inventory_secrets("dev")
    assert os.environ["NORNOS_SECRETS_DIR"] == "/mine" and "SOPS_AGE_KEY_FILE" not in os.environ
