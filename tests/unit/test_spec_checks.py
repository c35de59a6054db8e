"""The conformance machinery itself (tests/spec.py, tests/conftest.py, tests/support): formats,
query parameters, the deliberate exceptions, CI=true without the document, and the recording of
what subprocesses such as provision.py send."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _pytest.outcomes import Failed

from tests import conftest
from tests.spec import DELIBERATELY_INVALID, Spec, deliberately_invalid

KEY = {"id": 1, "name": "k", "fingerprint": "b7:2f", "public_key": "ssh-ed25519 AAAA", "labels": {},
       "created": "2016-01-30T23:55:00Z"}


@pytest.fixture(scope="module")
def spec(spec_document: Spec) -> Spec:
    return spec_document


@pytest.mark.parametrize("created", ["not a date", "2016-01-30", "2016-01-30 23:55:00Z", "2016-13-30T23:55:00Z",
                                     "2016-01-30T25:55:00Z", "2016-01-30T23:55:00"])
def test_a_bad_date_time_is_a_mismatch(spec: Spec, created: str) -> None:
    problems = spec.check_response("GET", "/ssh_keys/1", 200, {"ssh_key": {**KEY, "created": created}})
    assert problems == [f"response GET /ssh_keys/{{id}} 200: at ssh_key/created: {created!r} is not a 'date-time'"]


@pytest.mark.parametrize("created", ["2016-01-30T23:55:00Z", "2016-01-30T23:55:00+00:00",
                                     "2026-12-01T10:11:12.123456+01:00"])
def test_a_good_date_time_passes(spec: Spec, created: str) -> None:
    assert spec.check_response("GET", "/ssh_keys/1", 200, {"ssh_key": {**KEY, "created": created}}) == []


def test_int64_and_decimal_formats(spec: Spec) -> None:
    assert spec.check_response("GET", "/ssh_keys/1", 200, {"ssh_key": {**KEY, "id": 2**63}}) != []
    # the prices of GET /pricing are decimal strings
    ok = spec.check_response("GET", "/pricing", 200, {"pricing": {"currency": "EUR", "vat_rate": "19.00",
                                                                  "primary_ips": [], "floating_ips": [],
                                                                  "image": {"price_per_gb_month": {
                                                                      "net": "1.0", "gross": "1.19"}},
                                                                  "load_balancer_types": [], "server_backup": {
                                                                      "percentage": "20.00"},
                                                                  "server_types": [], "volume": {
                                                                      "price_per_gb_month": {"net": "0.04",
                                                                                             "gross": "0.0476"}}}})
    bad = spec.check_response("GET", "/pricing", 200, {"pricing": {"currency": "EUR", "vat_rate": "lots",
                                                                   "primary_ips": [], "floating_ips": [],
                                                                   "image": {"price_per_gb_month": {
                                                                       "net": "1.0", "gross": "1.19"}},
                                                                   "load_balancer_types": [], "server_backup": {
                                                                       "percentage": "20.00"},
                                                                   "server_types": [], "volume": {
                                                                       "price_per_gb_month": {"net": "0.04",
                                                                                              "gross": "0.0476"}}}})
    assert [p for p in ok if "vat_rate" in p] == []
    assert [p for p in bad if "vat_rate" in p] == [
        "response GET /pricing 200: at pricing/vat_rate: 'lots' is not a 'decimal'"]


def test_query_parameters(spec: Spec) -> None:
    assert spec.check_query("GET", "/servers", "label_selector=a%3Db&page=2&per_page=50&sort=name:desc") == []
    assert spec.check_query("GET", "/actions", "id=1&id=2&id=3") == []
    assert spec.check_query("GET", "/actions", "id=1&per_page=25") == [
        "query GET /actions: per_page is not a parameter of this operation"]
    assert spec.check_query("GET", "/servers", "page=x") == [
        "query GET /servers: page=['x']: 'x' is not of type 'integer'"]
    assert spec.check_query("GET", "/servers", "name=a&name=b") == ["query GET /servers: name given 2 times"]
    assert len(spec.check_query("GET", "/volumes", "status=gone")) == 1


def test_deliberately_invalid_requests_are_still_invalid(spec: Spec) -> None:
    """Each exception of the table names a request the spec forbids; one the spec allows is stale."""
    for (method, template, body), reason in DELIBERATELY_INVALID.items():
        path = template.replace("{id}", "1")
        assert spec.check_request(method, path, json.loads(body)) != [], (method, template, body)
        assert deliberately_invalid(spec, method, path, json.loads(body)) == reason
    assert deliberately_invalid(spec, "POST", "/ssh_keys", {"name": "x"}) is None


def test_check_exchange_inverts_for_requests_sent_on_purpose(spec: Spec) -> None:
    error = {"error": {"code": "invalid_input", "message": "bad", "details": None}}
    body = json.dumps({"name": "k"})  # no public_key: the spec forbids it
    assert conftest.check_exchange(spec, "POST", "http://h/v1/ssh_keys", body, 422, error) == [
        "request POST /ssh_keys: at (root): 'public_key' is a required property"]
    assert conftest.check_exchange(spec, "POST", "http://h/v1/ssh_keys", body, 422, error, expect_invalid=True) == []
    good = json.dumps({"name": "k", "public_key": "ssh-ed25519 AAAA"})
    assert conftest.check_exchange(spec, "POST", "http://h/v1/ssh_keys", good, 422, error, expect_invalid=True) == [
        "POST /ssh_keys: sent as a request the spec forbids, but the spec allows it"]
    assert conftest.check_exchange(spec, "GET", "http://h/v1/ssh_keys?sort=size", None, 422, error,
                                   expect_invalid=True) == []


def test_ci_without_the_document_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(conftest, "SPEC_PATH", tmp_path / "absent.json")
    monkeypatch.setattr(conftest, "CI", True)
    with pytest.raises(Failed, match="CI=true and Hetzner's OpenAPI document is missing"):
        conftest.spec_or_fail()
    monkeypatch.setattr(conftest, "CI", False)
    assert conftest.spec_or_fail() is None


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"ssh_key": {**KEY, "created": "not a date"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_subprocess_exchange_is_recorded_and_checked(spec: Spec, stub: str, tmp_path: Path) -> None:
    """What a tool run as a subprocess sends and gets is recorded (tests/support/sitecustomize.py)
    and a mismatch in it is found."""
    env = {**os.environ, "NORNOS_EXCHANGE_DIR": str(tmp_path), "NO_PROXY": "127.0.0.1",
           "PYTHONPATH": os.pathsep.join([str(conftest.SUPPORT), os.environ.get("PYTHONPATH", "")])}
    code = ("import requests; requests.Session().get(__import__('sys').argv[1] + '/v1/ssh_keys/1', "
            "params={'bogus': 1}, timeout=5)")
    subprocess.run([sys.executable, "-c", code, stub], env=env, check=True, timeout=60)
    seen: dict[Path, int] = {}
    exchanges = conftest.subprocess_exchanges(tmp_path, seen)
    assert [(e["method"], e["status"]) for e in exchanges] == [("GET", 200)]
    e = exchanges[0]
    assert conftest.check_exchange(spec, e["method"], e["url"], e["body"], e["status"], e["reply"]) == [
        "query GET /ssh_keys/{id}: bogus is not a parameter of this operation",
        "response GET /ssh_keys/{id} 200: at ssh_key/created: 'not a date' is not a 'date-time'"]
    assert conftest.subprocess_exchanges(tmp_path, seen) == []  # read once
