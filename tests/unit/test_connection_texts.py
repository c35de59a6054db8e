"""What a person reads from nornos_infra/cloud/connection.py when the endpoint is not the API, the
hcloud CLI config has no contexts, or a network error's cause is chained without a context.
Found by the mutation score (scripts/mutation_score.py, issue 16)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests

from nornos_infra.cloud.connection import Connection, _cli_context_token, _reason
from nornos_infra.errors import UserError


def test_a_dead_endpoint_is_one_line_that_says_what_to_check_and_that_nothing_changed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens once closed
    conn = Connection(token="t", endpoint=endpoint)
    with pytest.raises(UserError) as err:
        conn.request("GET", "/servers", "list servers")
    message = str(err.value)
    assert message.startswith(f"HCLOUD_ENDPOINT {endpoint} cannot be reached (")
    assert message.endswith("); check HCLOUD_ENDPOINT (the Hetzner Cloud API, https://api.hetzner.cloud/v1, or "
                            "localcloud's http://127.0.0.1:8700/v1) and that it is up; nothing was changed by this "
                            "request")


def test_a_cli_config_without_contexts_gives_no_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cli.toml"
    config.write_text('active_context = "work"\n')
    monkeypatch.setenv("HCLOUD_CONFIG", str(config))
    monkeypatch.delenv("HCLOUD_CONTEXT", raising=False)
    assert _cli_context_token() is None


def test_a_cause_without_a_context_is_followed() -> None:
    outer = requests.ConnectionError("outer")
    outer.__cause__ = OSError("host: unreachable")  # `raise ... from` outside an except block
    assert outer.__context__ is None
    assert _reason(outer) == "OSError: unreachable"
