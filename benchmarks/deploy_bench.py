"""The host deploy on real machines: first run and no-op re-run, for dev (6 hosts) and 1 host.

    .venv/bin/python benchmarks/deploy_bench.py

Root on Linux, nothing else using real hosts. Starts its own localcloud --hosts nspawn,
provisions dev, runs ``pyinfra inventories/dev.py deploys/all.py`` twice (first deploy,
then the no-op re-run), destroys and re-provisions dev, and runs the deploy twice more
limited to one fresh host: the PostgreSQL server, the heaviest role (with six hosts in
parallel, the slowest host sets the pace). Prints the four times, how busy this machine's
CPUs were during each first deploy (all machines share them: on Hetzner each server has its
own), and the ratios (goals: no-op <= 15 % of the first run; 6 hosts <= 1.5x one host).

The apt proxy's package cache is whatever this machine has (warm after the first ever run;
the first figure of a cold cache includes downloads). k3s and the manifests are skipped
on localcloud (no k3s binary offline), so they are not in the figures.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from realhosts import RealDev

ONE_HOST = "nornos-dev-postgres-1"


def _cpu_times() -> tuple[int, int]:
    """(all, idle+iowait) jiffies of every CPU together, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


class Bench(RealDev):
    busy = 0.0

    def deploy(self, *extra: str) -> float:
        """Seconds of one pyinfra run; also records how busy this machine's CPUs were (``self.busy``)."""
        before = _cpu_times()
        started = time.monotonic()
        self.pyinfra(*extra)
        took = time.monotonic() - started
        after = _cpu_times()
        self.busy = 1 - (after[1] - before[1]) / max(after[0] - before[0], 1)
        return took


def main() -> int:
    if os.geteuid() != 0:
        print("deploy_bench: needs root (real hosts)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="deploy-bench-", dir="/var/tmp") as tmp:
        bench = Bench(Path(tmp))
        try:
            bench.provision()
            first6 = bench.deploy()
            busy6 = bench.busy
            noop6 = bench.deploy()
            print(f"dev, 6 hosts: first deploy {first6:.1f}s (CPUs {busy6:.0%} busy), no-op re-run {noop6:.1f}s",
                  flush=True)
            bench.provision("--destroy")
            bench.provision()
            first1 = bench.deploy("--limit", ONE_HOST)
            busy1 = bench.busy
            noop1 = bench.deploy("--limit", ONE_HOST)
            print(f"1 host ({ONE_HOST}): first deploy {first1:.1f}s (CPUs {busy1:.0%} busy), no-op re-run "
                  f"{noop1:.1f}s", flush=True)
        finally:
            bench.close()
    print(f"no-op / first: 6 hosts {noop6 / first6:.0%}, 1 host {noop1 / first1:.0%} (goal <= 15 %)")
    print(f"6 hosts / 1 host (first deploy): {first6 / first1:.2f}x (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
