"""localcloud/control.py with a real background localcloud (API only, a free port): up, find,
healthy, a second up that reuses it, down, and what it must never stop."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from localcloud import control
from localcloud.config import DEFAULT_TOKEN


def test_up_find_healthy_down(tmp_path: Path) -> None:
    state = tmp_path / "lc"
    assert control.find(state) is None and control.down(state) is False
    running = control.up(state, port=0, extra=["--time-scale", "0.2"])
    try:
        assert running.token == DEFAULT_TOKEN and running.state == state
        assert running.env == {"HCLOUD_ENDPOINT": running.endpoint, "HCLOUD_TOKEN": DEFAULT_TOKEN}
        assert control.healthy(running.endpoint)
        reply = requests.get(f"{running.endpoint}/locations", timeout=5,
                             headers={"Authorization": f"Bearer {running.token}"})
        assert reply.status_code == 200 and reply.json()["locations"]
        assert (state / "localcloud.pid").read_text() == str(running.pid)
        found = control.find(state)
        assert found == running
        again = control.up(state, port=0)  # already running for this state: the same process
        assert again.pid == running.pid and again.endpoint == running.endpoint
    finally:
        stopped = control.down(state)
    assert stopped is True
    assert not control._is_localcloud(running.pid)
    assert not control.healthy(running.endpoint)
    assert control.find(state) is None
    assert not (state / "localcloud.pid").exists() and not (state / "localcloud.json").exists()
    assert control.down(state) is False


def test_down_never_stops_a_process_that_is_not_localcloud(tmp_path: Path) -> None:
    """A stale pid file (localcloud died, the pid was reused) must not kill the new owner."""
    state = tmp_path / "lc"
    state.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (state / "localcloud.pid").write_text(str(other.pid))
        (state / "localcloud.json").write_text(json.dumps({"pid": other.pid, "endpoint": "http://127.0.0.1:9/v1"}))
        assert control.find(state) is None
        assert control.down(state) is False
        time.sleep(0.2)
        assert other.poll() is None, "down() ended a process that is not localcloud"
        assert not (state / "localcloud.pid").exists()
    finally:
        other.kill()
        other.wait()


def test_up_says_why_localcloud_did_not_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="localcloud exited with 2"):
        control.up(tmp_path / "lc", port=0, extra=["--profile", "no-such-profile"], timeout=30)


def test_healthy_is_false_where_nothing_answers() -> None:
    assert control.healthy("http://127.0.0.1:9/v1") is False
