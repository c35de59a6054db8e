"""invoke tasks: the commands the platform team types (``invoke --list``).

Tasks for provisioning, deploys and manifests arrive with their issues; this file wraps the
library and localcloud, it holds no logic of its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import Collection, Context, task

ROOT = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # the venv's tools, whatever PATH says
STATE = Path(os.environ.get("LOCALCLOUD_STATE", ROOT / ".localcloud"))


@task(help={"port": "port to listen on (default 8700)", "profile": "fast or realistic",
            "time_scale": "multiply action durations", "faults": "fault document (JSON or @file)"})
def lc_up(c: Context, port: int = 8700, profile: str = "fast", time_scale: float = 1.0, faults: str = "") -> None:
    """Start localcloud in the background (state in .localcloud/)."""
    from localcloud import control

    extra = ["--profile", profile, "--time-scale", str(time_scale)] + (["--faults", faults] if faults else [])
    try:
        running = control.up(STATE, port=port, extra=extra)
    except RuntimeError as exc:
        sys.exit(f"localcloud.up: {exc}")
    print(f"localcloud is serving {running.endpoint} (pid {running.pid}, state {STATE})")
    print(f"  export HCLOUD_ENDPOINT={running.endpoint} HCLOUD_TOKEN={running.token}")


@task
def lc_down(c: Context) -> None:
    """Stop the background localcloud (its state stays in .localcloud/)."""
    from localcloud import control

    print("localcloud stopped" if control.down(STATE) else "localcloud was not running")


@task
def lc_status(c: Context) -> None:
    """Say whether localcloud runs, where, and how busy it has been."""
    from localcloud import control, tour

    running = control.find(STATE)
    if running is None or not control.healthy(running.endpoint):
        sys.exit("localcloud is not running; start it with `invoke localcloud.up`")
    stats = tour.side(running.endpoint, "stats")
    print(f"localcloud is serving {running.endpoint} (pid {running.pid}): {stats['requests']} requests served, "
          f"resources {', '.join(f'{k} {v}' for k, v in stats['resources'].items() if v)}")


@task
def demo(c: Context, port: int = 8700) -> None:
    """The quick start: start localcloud and show it serving with a short tour."""
    from hcloud import APIException

    from localcloud import control, tour

    try:
        running = control.up(STATE, port=port)
        tour.run(running.endpoint, running.token)
    except (RuntimeError, APIException) as exc:
        sys.exit(f"demo: {exc}; see {STATE / 'localcloud.log'}")


@task
def lint(c: Context) -> None:
    """ruff, then mypy (strict on localcloud and the library)."""
    c.run(f"{BIN}/ruff check localcloud tests benchmarks tasks.py", pty=False)
    c.run(f"{BIN}/mypy localcloud", pty=False)


@task(help={"args": "extra pytest arguments"})
def test(c: Context, args: str = "") -> None:
    """The test suite (same as scripts/test.sh)."""
    c.run(f"{ROOT / 'scripts' / 'test.sh'} {args}", pty=False)


localcloud_tasks = Collection("localcloud")
localcloud_tasks.add_task(lc_up, "up")
localcloud_tasks.add_task(lc_down, "down")
localcloud_tasks.add_task(lc_status, "status")
ns = Collection(demo, lint, test, localcloud_tasks)
