"""Where the API token and endpoint come from (HCLOUD_TOKEN, else the hcloud CLI's context)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nornos_infra.cloud.connection import DEFAULT_ENDPOINT, Connection
from nornos_infra.errors import UserError

CLI_TOML = """
active_context = "work"

[[contexts]]
name = "home"
token = "home-token"

[[contexts]]
name = "work"
token = "work-token"
"""


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for var in ("HCLOUD_TOKEN", "HCLOUD_ENDPOINT", "HCLOUD_CONTEXT", "NORNOS_POLL_INTERVAL"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "cli.toml"
    monkeypatch.setenv("HCLOUD_CONFIG", str(config))
    return config


def test_token_from_environment_wins(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env.write_text(CLI_TOML)
    monkeypatch.setenv("HCLOUD_TOKEN", "env-token")
    monkeypatch.setenv("HCLOUD_ENDPOINT", "http://127.0.0.1:8700/v1/")
    conn = Connection.from_environment()
    assert (conn.token, conn.endpoint) == ("env-token", "http://127.0.0.1:8700/v1")


def test_token_from_the_cli_active_context(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env.write_text(CLI_TOML)
    conn = Connection.from_environment()
    assert (conn.token, conn.endpoint) == ("work-token", DEFAULT_ENDPOINT)
    monkeypatch.setenv("HCLOUD_CONTEXT", "home")
    assert Connection.from_environment().token == "home-token"


def test_no_token_is_one_clear_error(clean_env: Path) -> None:
    with pytest.raises(UserError, match="HCLOUD_TOKEN"):
        Connection.from_environment()
    clean_env.write_text("not toml [")
    with pytest.raises(UserError, match="HCLOUD_TOKEN"):
        Connection.from_environment()
