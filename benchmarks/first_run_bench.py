"""The README's main job as a newcomer runs it: a fresh clone, then ``scripts/quickstart.sh``.

    .venv/bin/python benchmarks/first_run_bench.py [--cold 5] [--warm 10] [--repo URL]

Root on Linux. Only one localcloud with real hosts can run on a machine; each run takes the
advisory lock /tmp/nornos-realhosts.lock (take it too around other real-host work here, e.g.
``flock /tmp/nornos-realhosts.lock scripts/test.sh tests/e2e``). Each run clones the repository
(HEAD of this checkout by default) into a new directory and runs the quick start there:
bootstrap (the clone's own .venv), the real machines' packages, localcloud with real Debian
machines, provision dev, the deploy and the reachability probes. Then it stops that
localcloud and removes the clone.

- cold: localcloud's caches are removed first (the image template and the apt proxy's
  package cache in /var/cache/localcloud), so every package is downloaded again;
- warm: the caches stay.
After the first successful run, the same clone runs ``invoke demo`` a second time, which must
plan no changes and change 0 operations.

Prints one line per run (result, seconds, where a failure happened: the pyinfra operation
that failed, or the step of the demo) and a summary against the goals (5 of 5 cold and 10
of 10 warm runs succeed; a cold run takes <= 5 minutes on 2 cores). Figures only.
"""

from __future__ import annotations

import argparse
import fcntl
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path("/var/cache/localcloud")
LOCK = Path("/tmp/nornos-realhosts.lock")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
COLD_GOAL_S = 300


@dataclass
class Run:
    kind: str
    ok: bool
    seconds: float
    where: str


def failure_point(log: str) -> str:
    """Where a quick start failed: the pyinfra operation with an error, else the demo's own line."""
    lines = [ANSI.sub("", line).rstrip() for line in log.splitlines()]
    for i, line in enumerate(lines):
        if "Error" in line and "[" in line:  # pyinfra: "[host] Error: ..." under its operation
            op = next((lines[j] for j in range(i, -1, -1) if lines[j].startswith("--> Starting operation")), "")
            return f"{op.removeprefix('--> Starting operation: ').strip()}: {line.strip()}"[:200]
    demo = [line for line in lines if line.startswith(("demo:", "quickstart:", "bootstrap:", "hosts-deps:"))]
    return (demo[-1] if demo else (lines[-1] if lines else "no output"))[:200]


def succeeded(rc: int, log: str) -> bool:
    return rc == 0 and re.search(r"all \d+ probes as designed", ANSI.sub("", log)) is not None


def quickstart(clone: Path, log_file: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    with log_file.open("w") as out:
        rc = subprocess.run(["scripts/quickstart.sh"], cwd=clone, stdout=out, stderr=subprocess.STDOUT,
                            timeout=3600).returncode
    return rc, log_file.read_text(errors="replace"), time.monotonic() - started


def second_demo_changes_nothing(clone: Path) -> str:
    proc = subprocess.run([str(clone / ".venv" / "bin" / "invoke"), "demo"], cwd=clone, capture_output=True,
                          text=True, timeout=1800)
    text = ANSI.sub("", proc.stdout + proc.stderr)
    total = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", text)
    changed = total.group(2) if total else "?"
    plan = "no changes" if re.search(r"no changes", text, re.IGNORECASE) else "CHANGES PLANNED"
    return f"second demo: rc {proc.returncode}, plan: {plan}, deploy changed {changed.replace('-', '0')} operation(s)"


def down(clone: Path) -> None:
    invoke = clone / ".venv" / "bin" / "invoke"
    if invoke.exists():
        subprocess.run([str(invoke), "localcloud.down"], cwd=clone, capture_output=True, timeout=300)


def one_run(kind: str, repo: str, logs: Path, index: int, check_again: bool) -> tuple[Run, str]:
    with tempfile.TemporaryDirectory(prefix="nornos-first-run-") as tmp:
        clone = Path(tmp) / "nornos-infra"
        subprocess.run(["git", "clone", "-q", repo, str(clone)], check=True)
        if kind == "cold":
            shutil.rmtree(CACHE, ignore_errors=True)
        log_file = logs / f"{kind}-{index}.log"
        again = ""
        try:
            rc, log, seconds = quickstart(clone, log_file)
            ok = succeeded(rc, log)
            if ok and check_again:
                again = second_demo_changes_nothing(clone)
        finally:
            down(clone)
        return Run(kind, ok, seconds, "" if ok else f"rc {rc}: {failure_point(log)}"), again


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=5, help="cold runs (caches removed first)")
    parser.add_argument("--warm", type=int, default=10, help="warm runs")
    parser.add_argument("--repo", default=str(ROOT), help="what to clone (default: this checkout's HEAD)")
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "nornos-first-run-logs")
    args = parser.parse_args()
    args.logs.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    again = ""
    for i, kind in enumerate(["cold"] * args.cold + ["warm"] * args.warm, start=1):
        with LOCK.open("a") as lock:  # per run: others' real-host tests can go in between
            fcntl.flock(lock, fcntl.LOCK_EX)
            run, second = one_run(kind, args.repo, args.logs, i, check_again=not again)
        again = again or second
        runs.append(run)
        print(f"run {i:2} {kind}: {'ok    ' if run.ok else 'FAILED'} {run.seconds:6.1f} s  {run.where}", flush=True)
    print(f"\nlogs in {args.logs}")
    for kind in ("cold", "warm"):
        mine = [r for r in runs if r.kind == kind]
        if mine:
            times = sorted(r.seconds for r in mine)
            print(f"{kind}: {sum(r.ok for r in mine)} of {len(mine)} succeeded; seconds min {times[0]:.0f}, "
                  f"median {times[len(times) // 2]:.0f}, max {times[-1]:.0f}"
                  + (f" (goal <= {COLD_GOAL_S})" if kind == "cold" else ""))
    print(again or "second demo: not run (no run succeeded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
