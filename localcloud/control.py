"""Start, find and stop a background localcloud (``invoke localcloud.up`` / ``localcloud.down``).

The process is recorded in ``<state>/localcloud.pid`` and ``<state>/localcloud.json``;
stop ends that PID only, and only when its command line is localcloud's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from localcloud.config import DEFAULT_TOKEN


@dataclass
class Running:
    pid: int
    endpoint: str
    token: str
    state: Path

    @property
    def env(self) -> dict[str, str]:
        return {"HCLOUD_ENDPOINT": self.endpoint, "HCLOUD_TOKEN": self.token}


def _is_localcloud(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"localcloud" in cmdline and b"serve" in cmdline


def find(state: Path) -> Running | None:
    info_file = state / "localcloud.json"
    if not info_file.exists():
        return None
    info = json.loads(info_file.read_text())
    if not _is_localcloud(int(info["pid"])):
        return None
    return Running(int(info["pid"]), info["endpoint"], info.get("token", DEFAULT_TOKEN), state)


def healthy(endpoint: str) -> bool:
    url = endpoint.removesuffix("/v1") + "/_localcloud/health"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def up(state: Path, port: int = 8700, extra: list[str] | None = None, token: str = DEFAULT_TOKEN,
       timeout: float | None = None) -> Running:
    """Start localcloud in the background unless it already runs for this state directory.

    With ``--hosts nspawn`` in ``extra`` the first start builds the image template (about a
    minute), so the default wait is 15 minutes instead of 20 seconds.
    """
    if timeout is None:
        timeout = 900.0 if "nspawn" in (extra or []) else 20.0
    state.mkdir(parents=True, exist_ok=True)
    running = find(state)
    if running is not None and healthy(running.endpoint):
        return running
    info_file = state / "localcloud.json"
    info_file.unlink(missing_ok=True)
    log = (state / "localcloud.log").open("ab")
    args = [sys.executable, "-m", "localcloud", "serve", "--port", str(port), "--state", str(state / "api"),
            "--token", token, "--port-file", str(info_file), *(extra or [])]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (state / "localcloud.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (state / "localcloud.log").read_text()[-600:]
            raise RuntimeError(f"localcloud exited with {proc.returncode}: {tail.strip().splitlines()[-1:]}")
        if info_file.exists():
            info = json.loads(info_file.read_text())
            info["token"] = token
            info_file.write_text(json.dumps(info))
            if healthy(info["endpoint"]):
                return Running(proc.pid, info["endpoint"], token, state)
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"localcloud did not answer within {timeout:.0f} s; see {state / 'localcloud.log'}")


def down(state: Path, timeout: float = 90.0) -> bool:
    """Stop the recorded localcloud; True when one was running. With real hosts it powers its
    machines off cleanly before it exits (a few seconds)."""
    pid_file = state / "localcloud.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    stopped = False
    if _is_localcloud(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _is_localcloud(pid):
            time.sleep(0.1)
        if _is_localcloud(pid):
            os.kill(pid, signal.SIGKILL)
        stopped = True
    pid_file.unlink(missing_ok=True)
    (state / "localcloud.json").unlink(missing_ok=True)
    return stopped
