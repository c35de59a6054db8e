"""Issue 10, finding 10: localcloud answers every error in the API's error format
(``{"error": {"code", "message", "details"}}``), 4xx for any malformed input (never a 500),
and never echoes credentials, including the errors aiohttp itself would send in plain text
(a header or URL too long, a body too big, a path without a route such as ``GET /v1``)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

import pytest
import requests

from tests.conftest import TOKEN, LocalCloud

AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ admin@nornos"


def hetzner_error(resp: requests.Response | tuple[int, bytes], status: int | tuple[int, ...]) -> dict[str, Any]:
    code, body = (resp.status_code, resp.content) if isinstance(resp, requests.Response) else resp
    assert code in (status if isinstance(status, tuple) else (status,)), (code, body[:300])
    data = json.loads(body)
    assert set(data) == {"error"} and set(data["error"]) == {"code", "message", "details"}, data
    assert isinstance(data["error"]["code"], str) and isinstance(data["error"]["message"], str)
    assert TOKEN not in body.decode(errors="replace")
    return dict(data["error"])


def raw_request(lc: LocalCloud, data: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (requests would refuse to), return status and body."""
    with socket.create_connection(("127.0.0.1", lc.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    reply = b"".join(chunks)
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_deep_json_is_a_400_not_a_recursion_error(localcloud: LocalCloud) -> None:
    localcloud.reset()
    deep = "[" * 100_000 + "]" * 100_000
    resp = requests.post(f"{localcloud.endpoint}/servers", data=deep, headers=AUTH, timeout=30)
    assert hetzner_error(resp, 400)["code"] == "json_error"
    labels: Any = "x"
    for _ in range(200):
        labels = {"a": labels}
    resp = requests.post(f"{localcloud.endpoint}/ssh_keys", json={"name": "k", "public_key": KEY, "labels": labels},
                         headers=AUTH, timeout=30)
    assert hetzner_error(resp, 400)["code"] == "json_error"
    for body in (b'{"name": NaN}', b'{"name": Infinity}', b'{"name": "\xff\xfe"}'):
        resp = requests.post(f"{localcloud.endpoint}/ssh_keys", data=body, headers=AUTH, timeout=10)
        assert hetzner_error(resp, 400)["code"] == "json_error"
    assert requests.get(f"{localcloud.endpoint}/ssh_keys", headers=AUTH, timeout=10).json()["ssh_keys"] == []


@pytest.mark.parametrize("labels", [{"role\n": "x"}, {"role": "x\n"}, {"nornos.io\n/env": "x"}, {"a/b\n": "x"}])
def test_labels_ending_in_a_newline_are_refused(localcloud: LocalCloud, labels: dict[str, str]) -> None:
    localcloud.reset()
    resp = requests.post(f"{localcloud.endpoint}/ssh_keys", json={"name": "k", "public_key": KEY, "labels": labels},
                         headers=AUTH, timeout=10)
    assert hetzner_error(resp, 422)["code"] == "invalid_input"
    assert requests.get(f"{localcloud.endpoint}/ssh_keys", headers=AUTH, timeout=10).json()["ssh_keys"] == []


def test_http_layer_errors_are_in_the_api_format(localcloud: LocalCloud) -> None:
    assert hetzner_error(requests.get(f"http://127.0.0.1:{localcloud.port}/v1", headers=AUTH, timeout=10),
                         404)["code"] == "not_found"
    assert hetzner_error(requests.get(f"http://127.0.0.1:{localcloud.port}/nothing", headers=AUTH, timeout=10),
                         404)["code"] == "not_found"
    too_big = b"{" + b" " * (17 * 1024 * 1024) + b"}"
    resp = requests.post(f"{localcloud.endpoint}/ssh_keys", data=too_big, headers=AUTH, timeout=60)
    hetzner_error(resp, 413)
    long_url = f"{localcloud.endpoint}/servers?name={'a' * 20_000}"
    hetzner_error(requests.get(long_url, headers=AUTH, timeout=10), (400, 414))
    hetzner_error(requests.get(f"{localcloud.endpoint}/servers", headers={**AUTH, "X-Long": "b" * 20_000},
                               timeout=10), (400, 431))
    hetzner_error(raw_request(localcloud, b"GET /v1/servers HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"), 400)
    hetzner_error(raw_request(localcloud, b"G\x00T /v1/servers HTTP/1.1\r\nHost: x\r\n\r\n"), 400)


def test_an_over_long_authorization_header_is_never_echoed(localcloud: LocalCloud) -> None:
    """aiohttp's own 400 quoted the start of the over-long header: here, the token."""
    secret = TOKEN + "s3cr3t" * 3000
    resp = requests.get(f"{localcloud.endpoint}/servers", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    hetzner_error(resp, (400, 431))
    assert "s3cr3t" not in resp.text and "Bearer" not in resp.text
    wrong = requests.get(f"{localcloud.endpoint}/servers", headers={"Authorization": "Bearer wrong-s3cr3t"},
                         timeout=10)
    assert hetzner_error(wrong, 401)["code"] == "unauthorized" and "s3cr3t" not in wrong.text


@pytest.mark.parametrize("value", ["1e999", "-1e999", "NaN", "2.5", "true", '"2"'])
def test_fault_counts_json_cannot_hold_are_refused(localcloud: LocalCloud, value: str) -> None:
    localcloud.reset()
    body = '{"errors": [{"method": "GET", "path": "/x", "code": "conflict", "times": ' + value + '}]}'
    resp = requests.put(f"http://127.0.0.1:{localcloud.port}/_localcloud/faults", data=body, timeout=10)
    assert resp.status_code == 400 and "times must be a whole number" in resp.json()["error"]
    assert localcloud.side("GET", "faults")["errors"] == []


def test_faults_at_start_that_json_cannot_count_are_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "localcloud", "serve", "--port", "0", "--faults",
                             '{"errors": [{"code": "conflict", "times": 1e999}]}'],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "times must be a whole number" in result.stderr
