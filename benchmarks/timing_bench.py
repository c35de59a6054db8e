"""The wall-clock figures the tests no longer assert (they assert order and counts instead).

    .venv/bin/python benchmarks/timing_bench.py [--runs 5]

Prints, per figure, the median and the worst of ``--runs`` runs on this machine:
- recovery from a 429 with the budget empty (hcloud-python backs off 1 s, then succeeds);
- a request with 0.3 s of injected latency, and one without (the latency rule's overhead);
- a change sent while a 1 s action runs: the first answer (conflict) and the client's retry to success;
- the apply step noticing a Deployment past its progress deadline (one look, no polling to the timeout).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hcloud.networks import NetworkRoute, NetworkSubnet

from tests.conftest import LocalCloud, make_client, start_localcloud


def measure(fn: Callable[[], object]) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def report(name: str, samples: list[float]) -> None:
    print(f"{name:58} median {statistics.median(samples):6.3f} s   worst {max(samples):6.3f} s")


def rate_limit_recovery(lc: LocalCloud) -> float:
    client = make_client(lc)
    lc.side("PUT", "config", {"rate_limit": 3600, "rate_limit_remaining": 0})
    return measure(client.locations.get_all)


def latency(lc: LocalCloud) -> tuple[float, float]:
    client = make_client(lc)
    lc.side("PUT", "faults", {"latency": [{"method": "GET", "path": "/locations*", "seconds": 0.3}]})
    slow = measure(client.locations.get_all)
    fast = measure(client.ssh_keys.get_all)
    lc.side("PUT", "faults", {})
    return slow, fast


def conflict_retry(lc: LocalCloud, n: int) -> tuple[float, float]:
    client = make_client(lc)
    net = client.networks.create(name=f"bench-{n}", ip_range="10.0.0.0/16")
    lc.side("PUT", "config", {"time_scale": 20})  # add_subnet takes 1 s
    try:
        net.add_subnet(NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="eu-central"))
        started = time.monotonic()
        second = net.add_route(NetworkRoute(destination="10.100.0.0/16", gateway="10.0.1.2"))
        retried = time.monotonic() - started
    finally:
        lc.side("PUT", "config", {"time_scale": 0.2})
    second.wait_until_finished()
    first = next(e for e in lc.requests_log() if e["path"].endswith("/actions/add_route"))
    return first["duration_ms"] / 1000, retried


def rollout_deadline() -> float:
    from nornos_infra.kube.apply import Timing, apply_objects
    from nornos_infra.kube.cluster import Cluster
    from tests.unit.fake_kube import FakeKube
    from tests.unit.test_kube_strict import NS, deployment

    with FakeKube() as kube:
        kube.state.rollout = "deadline"
        cluster = Cluster(kube.api_client())
        started = time.monotonic()
        apply_objects(cluster, [NS, deployment()], "dev", timing=Timing(rollout_timeout=30, poll=0.5), prune=False)
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="timing-bench-") as tmp:
        lc = start_localcloud(Path(tmp) / "state", "--time-scale", "0.2")
        try:
            recovery, slow, fast, conflict, retried = [], [], [], [], []
            for n in range(args.runs):
                lc.reset()
                recovery.append(rate_limit_recovery(lc))
                lc.reset()
                s, f = latency(lc)
                slow.append(s)
                fast.append(f)
                lc.reset()
                c, r = conflict_retry(lc, n)
                conflict.append(c)
                retried.append(r)
        finally:
            lc.stop()
    report("429 with an empty budget, until the list succeeds", recovery)
    report("GET with 0.3 s injected latency", slow)
    report("GET without a latency rule", fast)
    report("change during a 1 s action: the conflict answer", conflict)
    report("change during a 1 s action: client retries to success", retried)
    report("apply + rollout past its progress deadline (30 s timeout)", [rollout_deadline() for _ in range(args.runs)])


if __name__ == "__main__":
    main()
