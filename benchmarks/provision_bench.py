"""Provisioning on localcloud: how well it parallelises, and how many API requests it spends.

    .venv/bin/python benchmarks/provision_bench.py [--skip-realistic]

Starts its own localcloud with the REALISTIC latency profile (the real service's action
timings) and prints:

* wall time to create dev and production from nothing, divided by the wall time of their
  critical path run alone (network -> one server -> its volume, plus the load balancer:
  an env with one control plane and the PostgreSQL server). 1.0 means the extra servers
  cost no time at all; the goal is <= 1.2;
* requests used to create each env (from localcloud's request log);
* requests of a no-op run at 7, 50 and 100 servers (a Hetzner network holds at most 100
  servers, so 200 is refused by validation; the benchmark shows that line). The goal is
  the same count at every size; list endpoints return at most 50 items per page, so each
  further 50 servers add one page.

Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from localcloud import control

ROOT = Path(__file__).resolve().parents[1]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ bench@nornos"


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env_dir = tmp / "environments"
        self.env_dir.mkdir()
        self.lc = control.up(tmp / "lc", port=0, extra=["--profile", "realistic", "--rate-limit", "1000000",
                                                         "--limit", "servers=300"])
        self.side = self.lc.endpoint.removesuffix("/v1") + "/_localcloud"

    def close(self) -> None:
        control.down(self.tmp / "lc")

    def config(self, **values: Any) -> None:
        requests.put(f"{self.side}/config", json=values, timeout=10).raise_for_status()

    def clear(self) -> None:
        requests.delete(f"{self.side}/requests", timeout=10).raise_for_status()

    def count(self) -> tuple[int, int]:
        log = requests.get(f"{self.side}/requests", timeout=30).json()["requests"]
        return len(log), sum(1 for r in log if r["method"] in ("POST", "PUT", "DELETE"))

    def write_env(self, source: str, name: str, pools: dict[str, Any] | None = None) -> None:
        data = yaml.safe_load((ROOT / "environments" / f"{source}.yaml").read_text())
        data["name"] = name
        data["ssh_keys"] = [{"name": "admin", "public_key": KEY}]
        data["admin_cidrs"] = ["198.51.100.1/32"]  # localcloud: this machine on the public side
        data["protection"] = False
        if pools is not None:
            data["pools"] = pools
        if name.startswith("n"):  # the no-op envs: an LB type whose 150 targets fit 100 servers
            data["load_balancer"]["type"] = "lb31"
        (self.env_dir / f"{name}.yaml").write_text(yaml.safe_dump(data))

    def provision(self, env: str, *flags: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        cmd = [sys.executable, str(ROOT / "provision.py"), env, "--yes", "--admin-ip", "198.51.100.1",
               "--env-dir", str(self.env_dir), "--inventory-dir", str(self.tmp / "inventories"), *flags]
        environ = {**os.environ, "HCLOUD_ENDPOINT": self.lc.endpoint, "HCLOUD_TOKEN": self.lc.token}
        start = time.perf_counter()
        result = subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=1800)
        return time.perf_counter() - start, result


def realistic(bench: Bench) -> None:
    chain_pools = {"control-plane": {"role": "k3s_server", "server_type": "cx23", "count": 1},
                   "postgres": {"role": "postgres", "server_type": "cx33", "count": 1, "volume_gb": 50}}
    rows = []
    for env, source, pools in (("chain", "dev", chain_pools), ("dev", "dev", None),
                               ("production", "production", None)):
        bench.write_env(source, env, pools)
        bench.config(profile="realistic", time_scale=1.0)
        bench.clear()
        wall, result = bench.provision(env)
        if result.returncode != 0:
            sys.exit(f"{env}: provision failed:\n{result.stderr[-2000:]}")
        total, mutating = bench.count()
        rows.append((env, wall, total, mutating))
        bench.config(profile="fast", time_scale=0.01)
        bench.provision(env, "--destroy")
    chain = rows[0][1]
    print("create from nothing, realistic latency profile")
    print(f"{'env':<12}{'servers':>8}{'wall s':>9}{'/ critical path':>17}{'requests':>10}{'mutating':>10}")
    servers = {"chain": 2, "dev": 6, "production": 12}
    for env, wall, total, mutating in rows:
        print(f"{env:<12}{servers[env]:>8}{wall:>9.1f}{wall / chain:>17.2f}{total:>10}{mutating:>10}")


def noop_requests(bench: Bench) -> None:
    bench.config(profile="fast", time_scale=0.01)
    print("\nrequests of a no-op run (plan finds nothing to do)")
    print(f"{'servers':>8}{'requests':>10}{'mutating':>10}")
    for total in (7, 50, 100, 200):
        workers = total - 4  # control plane, agent, postgres, redis
        pools = {"control-plane": {"role": "k3s_server", "server_type": "cx23", "count": 1},
                 "agents": {"role": "k3s_agent", "server_type": "cx23", "count": 1},
                 "postgres": {"role": "postgres", "server_type": "cx23", "count": 1, "volume_gb": 10},
                 "redis": {"role": "redis", "server_type": "cx23", "count": 1}}
        for i in range(0, workers, 50):
            pools[f"workers{i // 50 + 1}"] = {"role": "k3s_agent", "server_type": "cx23",
                                              "count": min(50, workers - i)}
        env = f"n{total}"
        bench.write_env("dev", env, pools)
        _, first = bench.provision(env)
        if first.returncode != 0:
            line = first.stderr.strip().splitlines()[-1] if first.stderr.strip() else "?"
            print(f"{total:>8}  refused: {line}")
            continue
        bench.clear()
        _, again = bench.provision(env)
        if again.returncode != 0:
            sys.exit(f"{env}: the second run failed:\n{again.stderr[-2000:]}")
        requests_used, mutating = bench.count()
        print(f"{total:>8}{requests_used:>10}{mutating:>10}")
        bench.provision(env, "--destroy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-realistic", action="store_true", help="only the request counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        bench = Bench(Path(tmp))
        try:
            if not args.skip_realistic:
                realistic(bench)
            noop_requests(bench)
        finally:
            bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
