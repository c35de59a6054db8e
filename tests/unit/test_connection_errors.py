"""Issue 10, finding 4: every request has connect and read timeouts, only transient errors are
retried, and a dead or wrong endpoint fails at once with one line naming it. A tiny local HTTP
server answers what each test scripts and counts the requests."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hcloud import APIException

from nornos_infra.cloud.connection import CONNECT_TIMEOUT, READ_TIMEOUT, Connection
from nornos_infra.errors import UserError


class Script:
    def __init__(self) -> None:
        self.replies: list[tuple[int, Any]] = []
        self.seen = 0


@pytest.fixture
def api() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            script.seen += 1
            status, body = script.replies.pop(0) if len(script.replies) > 1 else script.replies[0]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", script
    server.shutdown()


def error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": code, "details": None}}


def test_every_request_has_timeouts_and_the_client_does_not_retry_itself() -> None:
    client = Connection(token="t", endpoint="http://127.0.0.1:1/v1").client
    assert client._client._timeout == (CONNECT_TIMEOUT, READ_TIMEOUT)
    assert client._client._retry_max_retries == 0
    assert CONNECT_TIMEOUT + READ_TIMEOUT <= 25  # a dead endpoint: one line within 30 s


def test_a_permanent_error_is_not_retried(api: tuple[str, Script]) -> None:
    endpoint, script = api
    script.replies = [(200, {"server_types": []}), (422, error("invalid_input"))]
    conn = Connection(token="t", endpoint=endpoint, budget=30)
    conn.request("GET", "/server_types", "list")
    with pytest.raises(APIException):
        conn.request("GET", "/x", "x")
    assert script.seen == 2


def test_a_transient_error_is_retried_once_the_endpoint_answered(api: tuple[str, Script]) -> None:
    endpoint, script = api
    script.replies = [(200, {"ok": 1}), (503, error("unavailable")), (409, error("conflict")),
                      (423, error("locked")), (200, {"done": 1})]
    conn = Connection(token="t", endpoint=endpoint, budget=30)
    conn.request("GET", "/a", "a")
    assert conn.request("GET", "/b", "b") == {"done": 1}
    assert script.seen == 5


def test_an_endpoint_that_is_not_the_api_fails_at_once(api: tuple[str, Script]) -> None:
    endpoint, script = api
    script.replies = [(503, "<html>")]  # JSON, but not the API's error object
    conn = Connection(token="t", endpoint=endpoint, budget=30)
    started = time.monotonic()
    with pytest.raises(UserError) as exc:
        conn.request("GET", "/server_types", "list server types")
    assert time.monotonic() - started < 2 and script.seen == 1
    assert str(exc.value).startswith(f"HCLOUD_ENDPOINT {endpoint} answered list server types with HTTP 503")


def test_a_server_that_never_answers_fails_after_the_read_timeout() -> None:
    import socket

    with socket.socket() as hang:
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)
        endpoint = f"http://127.0.0.1:{hang.getsockname()[1]}/v1"
        conn = Connection(token="t", endpoint=endpoint, timeout=(1.0, 1.0))
        started = time.monotonic()
        with pytest.raises(UserError, match="did not answer in time"):
            conn.request("GET", "/server_types", "list server types")
        assert time.monotonic() - started < 3
