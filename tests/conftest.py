"""Shared fixtures: a localcloud process, a real hcloud-python client checked against the spec."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from hcloud import Client

from tests.spec import SPEC_PATH, Spec, split

TOKEN = "test-token-rw"
READONLY_TOKEN = "test-token-ro"


@dataclass
class LocalCloud:
    """A running ``python -m localcloud serve`` process and its side door."""

    proc: subprocess.Popen[bytes]
    port: int
    state: Path
    args: list[str]
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def side(self, method: str, path: str, body: Any = None) -> Any:
        resp = requests.request(method, f"http://127.0.0.1:{self.port}/_localcloud/{path}", json=body, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def reset(self) -> None:
        self.side("POST", "reset")

    def requests_log(self) -> list[dict[str, Any]]:
        return list(self.side("GET", "requests")["requests"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_localcloud(state: Path, *extra: str) -> LocalCloud:
    """Start localcloud on a free port and wait until it answers."""
    state.mkdir(parents=True, exist_ok=True)
    port_file = state / "port.json"
    port_file.unlink(missing_ok=True)
    log = state / "localcloud.log"
    args = [sys.executable, "-m", "localcloud", "serve", "--port", "0", "--state", str(state),
            "--token", TOKEN, "--readonly-token", READONLY_TOKEN, "--port-file", str(port_file), *extra]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"localcloud exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if port_file.exists():
            try:
                port = json.loads(port_file.read_text())["port"]
                requests.get(f"http://127.0.0.1:{port}/_localcloud/health", timeout=2).raise_for_status()
                return LocalCloud(proc, port, state, args, log)
            except (ValueError, KeyError, requests.RequestException):
                pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("localcloud did not start within 20 s")


@pytest.fixture(scope="session")
def localcloud() -> Iterator[LocalCloud]:
    with tempfile.TemporaryDirectory(prefix="localcloud-test-") as tmp:
        lc = start_localcloud(Path(tmp) / "state", "--time-scale", "0.2")
        try:
            yield lc
        finally:
            lc.stop()


@pytest.fixture(scope="session")
def spec() -> Spec | None:
    return Spec.load() if SPEC_PATH.exists() else None


@dataclass
class SpecRecorder:
    """Validates every request and response of a requests.Session against the spec."""

    spec: Spec | None
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if self.spec is None:
            return
        req = response.request
        method = req.method or "GET"
        path = split(req.url or "")
        if req.body:
            raw = req.body.decode() if isinstance(req.body, bytes) else req.body
            self.problems += self.spec.check_request(method, path, json.loads(raw))
        body = response.json() if response.content else None
        if response.status_code in (429,) or response.status_code >= 500:
            # error bodies are checked by shape as well
            pass
        self.problems += self.spec.check_response(method, path, response.status_code, body)
        self.checked += 1


@pytest.fixture
def recorder(spec: Spec | None) -> SpecRecorder:
    return SpecRecorder(spec)


def make_client(lc: LocalCloud, recorder: SpecRecorder | None = None, token: str = TOKEN,
                poll_interval: float = 0.05) -> Client:
    client = Client(token=token, api_endpoint=lc.endpoint, poll_interval=poll_interval,
                    application_name="nornos-tests")
    if recorder is not None:
        client._client._session.hooks["response"].append(recorder.hook)  # every HTTP exchange
    return client


@pytest.fixture
def client(localcloud: LocalCloud, recorder: SpecRecorder) -> Iterator[Client]:
    """A fresh cloud and a real hcloud-python client; the test fails on any spec mismatch."""
    localcloud.reset()
    yield make_client(localcloud, recorder)
    if recorder.problems:
        listed = "\n  ".join(dict.fromkeys(recorder.problems))
        pytest.fail(f"{len(recorder.problems)} spec mismatch(es):\n  {listed}", pytrace=False)


@pytest.fixture
def ssh_public_key() -> str:
    return ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ test@nornos")


def pytest_report_header(config: pytest.Config) -> str:
    return f"hcloud OpenAPI spec: {SPEC_PATH if SPEC_PATH.exists() else 'absent (conformance checks skip)'}"


os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
