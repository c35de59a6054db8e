"""Shared fixtures: a localcloud process, a real hcloud-python client checked against the spec."""

from __future__ import annotations

import contextlib
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
from urllib.parse import urlsplit

import pytest
import requests
from hcloud import Client

from tests.spec import SPEC_PATH, Spec, deliberately_invalid, split

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


# localcloud's time scale for the session (what POST /_localcloud/reset returns to). 0.2 keeps the
# actions short but still running for a poll or two; NORNOS_TEST_TIME_SCALE changes it (0: every action
# is due at once; scripts/mutation_score.py uses that for the API tests it runs per mutant). Tests that
# need slow actions set their own scale through the side door.
TIME_SCALE = os.environ.get("NORNOS_TEST_TIME_SCALE", "0.2")


@pytest.fixture(scope="session")
def localcloud() -> Iterator[LocalCloud]:
    with tempfile.TemporaryDirectory(prefix="localcloud-test-") as tmp:
        lc = start_localcloud(Path(tmp) / "state", "--time-scale", TIME_SCALE)
        try:
            yield lc
        finally:
            lc.stop()


CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SUPPORT = Path(__file__).resolve().parent / "support"


def spec_or_fail() -> Spec | None:
    """The document, or None outside CI (the report header says the checks are off); under
    CI=true a missing document fails the run: the conformance checks never go quietly."""
    if SPEC_PATH.exists():
        return _load_spec()
    if CI:
        pytest.fail(f"CI=true and Hetzner's OpenAPI document is missing ({SPEC_PATH}): set HCLOUD_OPENAPI to "
                    "cloud.spec.json; without it no request or response is checked", pytrace=False)
    return None


@pytest.fixture(scope="session")
def spec_document() -> Spec:
    """For tests that check nothing without the document: fails under CI=true (spec_or_fail),
    skips elsewhere, saying so, as the conformance checks do."""
    loaded = spec_or_fail()
    if loaded is None:
        pytest.skip(f"Hetzner's OpenAPI document is absent ({SPEC_PATH}; set HCLOUD_OPENAPI); under CI=true "
                    "this fails")
    return loaded


_SPEC: list[Spec] = []


def _load_spec() -> Spec:
    if not _SPEC:
        _SPEC.append(Spec.load())
    return _SPEC[0]


@pytest.fixture(scope="session")
def spec() -> Spec | None:
    return spec_or_fail()


def check_exchange(spec: Spec, method: str, url: str, body: str | bytes | None, status: int,
                   reply: Any, expect_invalid: bool = False) -> list[str]:
    """One HTTP exchange against the spec: query and request body (or, for a request sent on
    purpose because the spec forbids it, that the spec does forbid it), then the response."""
    path = split(url)
    query = urlsplit(url).query
    sent = json.loads(body) if body else None
    request_problems = spec.check_query(method, path, query)
    request_problems += spec.check_request(method, path, sent) if body else []
    expect_invalid = expect_invalid or (body is not None and deliberately_invalid(spec, method, path, sent) is not None)
    problems = []
    if expect_invalid:
        if not request_problems:
            problems.append(f"{method} {path}: sent as a request the spec forbids, but the spec allows it")
    else:
        problems += request_problems
    return problems + spec.check_response(method, path, status, reply)


@dataclass
class SpecRecorder:
    """Validates every request and response of a requests.Session against the spec."""

    spec: Spec | None
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    invalid: int = 0  # > 0 inside invalid_requests()

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if self.spec is None:
            return
        req = response.request
        reply = response.json() if response.content else None
        self.problems += check_exchange(self.spec, req.method or "GET", req.url or "", req.body,
                                        response.status_code, reply, expect_invalid=self.invalid > 0)
        self.checked += 1

    @contextlib.contextmanager
    def invalid_requests(self) -> Iterator[None]:
        """For requests the spec itself forbids (the test checks that localcloud refuses them as
        Hetzner does): each one's body must fail the spec; its response is checked as usual."""
        self.invalid += 1
        try:
            yield
        finally:
            self.invalid -= 1


@pytest.fixture
def recorder(spec: Spec | None) -> SpecRecorder:
    return SpecRecorder(spec)


@pytest.fixture(scope="session", autouse=True)
def _exchange_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every Python subprocess records its HTTP exchanges here (tests/support/sitecustomize.py)."""
    directory = tmp_path_factory.mktemp("exchanges")
    saved = {k: os.environ.get(k) for k in ("NORNOS_EXCHANGE_DIR", "PYTHONPATH")}
    os.environ["NORNOS_EXCHANGE_DIR"] = str(directory)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SUPPORT), saved["PYTHONPATH"]) if p)
    yield directory
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def subprocess_exchanges(directory: Path, seen: dict[Path, int]) -> list[dict[str, Any]]:
    """The exchanges recorded since ``seen`` (bytes read per file), which is brought up to date."""
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        with path.open("rb") as f:
            f.seek(seen.get(path, 0))
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]  # a line still being written is read next time
        seen[path] = seen.get(path, 0) + len(complete)
        out += [json.loads(line) for line in complete.decode().splitlines() if line]
    return out


@pytest.fixture(autouse=True)
def _subprocess_exchanges_conform(_exchange_dir: Path) -> Iterator[None]:
    """The requests provision.py and the other tools sent during this test, and the responses
    they got, checked against the spec: a mismatch fails the test that ran them."""
    seen: dict[Path, int] = {}
    subprocess_exchanges(_exchange_dir, seen)
    yield
    exchanges = [e for e in subprocess_exchanges(_exchange_dir, seen) if "/v1/" in urlsplit(e["url"]).path]
    if not exchanges:
        return
    checked = spec_or_fail()
    if checked is None:
        return
    problems: list[str] = []
    for e in exchanges:
        problems += check_exchange(checked, e["method"], e["url"], e["body"], e["status"], e["reply"])
    if problems:
        listed = "\n  ".join(dict.fromkeys(problems))
        pytest.fail(f"{len(problems)} spec mismatch(es) in what the tools sent or got:\n  {listed}", pytrace=False)


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
    if SPEC_PATH.exists():
        return f"hcloud OpenAPI spec: {SPEC_PATH}"
    return f"hcloud OpenAPI spec: absent ({SPEC_PATH}): {'the API tests FAIL (CI=true)' if CI else 'NOT CHECKED'}"


os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
