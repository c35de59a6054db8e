"""``python -m localcloud serve``: the manual, and one clear line plus a non-zero exit for bad arguments."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

SERVE = [sys.executable, "-m", "localcloud", "serve"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parents[2])


def test_help_is_a_manual() -> None:
    result = run("--help")
    assert result.returncode == 0 and result.stderr == ""
    for needle in ("HCLOUD_ENDPOINT", "--port", "--state", "--token", "--readonly-token", "--profile", "realistic",
                   "--time-scale", "--rate-limit", "--limit", "--faults", "--port-file", "/_localcloud/",
                   "faults", "config", "reset", "stats", "requests", "examples", "exit status"):
        assert needle in result.stdout, needle
    top = subprocess.run([sys.executable, "-m", "localcloud", "--help"], capture_output=True, text=True, timeout=30)
    assert top.returncode == 0 and "serve" in top.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("localcloud: ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(("args", "needle"), [
    (["--faults", "{not json"], "bad --faults: faults are not valid JSON"),
    (["--faults", '{"errors": 5}'], "errors must be a list"),
    (["--faults", '{"errors": [{"code": "nonsense"}]}'], "unknown error code"),
    (["--faults", '{"actions": {"create_server": "x"}}'], "between 0 and 1"),
    (["--faults", '{"latency": [{"seconds": -1}]}'], "seconds must be between"),
    (["--faults", "@/nonexistent/faults.json"], "cannot read fault file"),
    (["--time-scale", "-1"], "--time-scale: must be 0 or more"),
    (["--time-scale", "nan"], "--time-scale"),
    (["--time-scale", "fast"], "--time-scale: expected a number"),
    (["--port", "70000"], "--port: port must be 0-65535"),
    (["--port", "-1"], "--port"),
    (["--rate-limit", "0"], "--rate-limit"),
    (["--limit", "servers"], "--limit: expected NAME=N"),
    (["--limit", "colours=3"], "--limit"),
    (["--profile", "slow"], "--profile: invalid choice"),
    (["--token", ""], "--token"),
    (["--token", "same", "--readonly-token", "same"], "must differ"),
    (["--colour"], "unrecognized arguments: --colour"),
])
def test_bad_arguments_exit_2_with_one_line(args: list[str], needle: str) -> None:
    assert needle in one_line_error(run("--port", "0", *args), 2)


def test_missing_command_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "localcloud"], capture_output=True, text=True, timeout=30)
    one_line_error(result, 2)


def test_port_in_use_exits_1_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line_error(run("--port", str(port)), 1)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "in use" in line


def test_unusable_state_directory_exits_1_with_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert "cannot use state directory" in one_line_error(run("--port", "0", "--state", str(not_a_dir)), 1)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "localcloud.sqlite3").write_bytes(b"this is not a database" * 100)
    assert "cannot use state directory" in one_line_error(run("--port", "0", "--state", str(corrupt)), 1)


def test_unknown_host_exits_1_with_one_line() -> None:
    assert "cannot listen" in one_line_error(run("--port", "0", "--host", "no-such-host.invalid"), 1)
