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


def test_an_empty_token_says_which_variable_to_set() -> None:
    from nornos_infra.cloud.connection import check_token

    with pytest.raises(UserError) as err:
        check_token("  \n", "HCLOUD_TOKEN")
    assert str(err.value) == "HCLOUD_TOKEN is empty; set HCLOUD_TOKEN to the project's API token"


def test_a_token_refused_for_writing_says_what_to_set() -> None:
    """The write-permission check against an API that answers 401 unauthorized (a revoked token)."""
    server, endpoint = _answering(401, b'{"error": {"code": "unauthorized", "message": "unable to authenticate"}}')
    try:
        with pytest.raises(UserError) as err:
            Connection(token="t", endpoint=endpoint).check_write_access()
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert str(err.value) == (f"the API at {endpoint} refused the token for writing (unable to authenticate); set "
                              "HCLOUD_TOKEN to a read-write token of this project")


def test_an_endpoint_that_is_not_a_url_shows_a_good_one() -> None:
    from nornos_infra.cloud.connection import check_endpoint

    with pytest.raises(UserError) as err:
        check_endpoint("ftp://api.example")
    assert str(err.value) == ("HCLOUD_ENDPOINT 'ftp://api.example' is not an http(s) URL with a host; e.g. "
                              "https://api.hetzner.cloud/v1, or http://127.0.0.1:8700/v1 for localcloud")


def test_no_token_anywhere_says_where_one_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HCLOUD_TOKEN", raising=False)
    monkeypatch.setenv("HCLOUD_CONFIG", str(tmp_path / "no-cli-config.toml"))
    with pytest.raises(UserError) as err:
        Connection.from_environment()
    assert str(err.value) == ("no API token: set HCLOUD_TOKEN (or create an hcloud CLI context with `hcloud context "
                              "create`); for localcloud run `invoke localcloud.up` and export what it prints")


def _answering(status: int, body: bytes) -> tuple[object, str]:
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/v1"


def test_a_rejected_token_says_what_to_check() -> None:
    server, endpoint = _answering(401, b'{"error": {"code": "unauthorized", "message": "unable to authenticate"}}')
    try:
        with pytest.raises(UserError) as err:
            Connection(token="t", endpoint=endpoint).request("GET", "/servers", "list servers")
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert str(err.value) == (f"the API at {endpoint} rejected the token (unable to authenticate); check HCLOUD_TOKEN "
                              "(a read-write token of the right project) and HCLOUD_ENDPOINT")


def test_an_endpoint_without_the_api_paths_is_not_the_api() -> None:
    """not_found before anything answered like the API: the endpoint is wrong (no /v1), not the resource."""
    server, endpoint = _answering(404, b'{"error": {"code": "not_found", "message": "not found"}}')
    try:
        with pytest.raises(UserError) as err:
            Connection(token="t", endpoint=endpoint).request("GET", "/servers", "list servers")
    finally:
        server.shutdown()  # type: ignore[attr-defined]
    assert str(err.value).startswith(f"HCLOUD_ENDPOINT {endpoint} has no list servers (not_found); it must be the "
                                     "API's root, ending in /v1; check HCLOUD_ENDPOINT")
