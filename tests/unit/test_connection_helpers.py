"""Two helpers of nornos_infra/cloud/connection.py: the short reason of a network error and the hcloud
CLI's active-context token. Found by the mutation score (scripts/mutation_score.py): mutants of both
survived the suite."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import urllib3

from nornos_infra.cloud.connection import _cli_context_token, _reason


def chained() -> requests.ConnectionError:
    refused = ConnectionRefusedError(111, "Connection refused")
    new_conn = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] "
                                                            "Connection refused")  # type: ignore[arg-type]
    new_conn.__cause__ = refused
    pool = urllib3.exceptions.MaxRetryError(None, "/v1/servers?token=secret", reason=new_conn)  # type: ignore[arg-type]
    try:
        raise requests.ConnectionError(pool)
    except requests.ConnectionError as exc:
        return exc


def test_reason_is_the_innermost_cause_without_the_url() -> None:
    # requests' error -> urllib3's MaxRetryError (its URL carries the token) -> its reason
    assert _reason(chained()) == "NewConnectionError: [Errno 111] Connection refused"


def test_reason_follows_args_and_urllib3_reason() -> None:
    inner = urllib3.exceptions.ReadTimeoutError(None, "/v1/actions", "Read timed out. (read timeout=10)")  # type: ignore[arg-type]
    outer = requests.ReadTimeout(urllib3.exceptions.MaxRetryError(None, "/v1/actions", reason=inner))  # type: ignore[arg-type]
    assert _reason(outer) == "ReadTimeoutError: Read timed out. (read timeout=10)"
    assert _reason(ValueError("a: b: the end")) == "ValueError: the end"
    assert _reason(ValueError()) == "ValueError: ValueError"
    assert _reason(ValueError("x" * 300)) == ("ValueError: " + "x" * 300)[:160]


def test_reason_of_a_self_referencing_chain_ends() -> None:
    exc = OSError("loop")
    exc.__context__ = exc
    assert _reason(exc) == "OSError: loop"


CLI_TOML = """
active_context = "prod"

[[contexts]]
name = "dev"
token = "dev-token"

[[contexts]]
name = "empty"
token = ""

[[contexts]]
name = "prod"
token = "prod-token"
"""


def test_cli_context_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cli.toml"
    config.write_text(CLI_TOML)
    monkeypatch.setenv("HCLOUD_CONFIG", str(config))
    monkeypatch.delenv("HCLOUD_CONTEXT", raising=False)
    assert _cli_context_token() == "prod-token"
    monkeypatch.setenv("HCLOUD_CONTEXT", "dev")
    assert _cli_context_token() == "dev-token"
    monkeypatch.setenv("HCLOUD_CONTEXT", "empty")
    assert _cli_context_token() is None
    monkeypatch.setenv("HCLOUD_CONTEXT", "missing")
    assert _cli_context_token() is None
    config.write_text("not = [toml")
    assert _cli_context_token() is None
    monkeypatch.setenv("HCLOUD_CONFIG", str(tmp_path / "absent.toml"))
    assert _cli_context_token() is None


def test_cli_context_token_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HCLOUD_CONFIG", raising=False)
    monkeypatch.delenv("HCLOUD_CONTEXT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".config" / "hcloud").mkdir(parents=True)
    (tmp_path / ".config" / "hcloud" / "cli.toml").write_text(CLI_TOML)
    assert _cli_context_token() == "prod-token"
