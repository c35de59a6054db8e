"""localcloud with real hosts (``--hosts nspawn``): how fast servers come up, what they cost.

    .venv/bin/python benchmarks/hosts_bench.py [--sizes 1,5,10] [--skip-template]

Root on Linux, nothing else using real hosts (only one such localcloud per machine). Prints:

* image template build: cold (an empty template cache; the apt proxy's package cache is the
  machine's usual one, so the figure is debootstrap and setup, not the internet) and warm
  (the template is reused: start-up only);
* create -> SSH for 1, 5 and 10 servers created at once through hcloud-python: seconds
  from the create request until ``ssh root@ip true`` succeeds, slowest and median;
* memory per idle server: the PSS of every process in each machine's cgroup, 20 s after
  the batch of 10 answered SSH (PSS splits shared pages fairly between the machines), and
  the drop in this machine's MemAvailable divided by the number of servers.

Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType

from localcloud import control
from localcloud.hosts.system import CGROUP_GROUP, CGROUP_ROOT, cgroup_pids

NSPAWN = ["--hosts", "nspawn", "--time-scale", "0.2"]
DEFAULT_APT_CACHE = Path("/var/cache/localcloud/apt")


def _start(state: Path, cache: Path) -> tuple[control.Running, float]:
    started = time.monotonic()
    running = control.up(state, port=0, extra=[*NSPAWN, "--hosts-cache", str(cache)])
    return running, time.monotonic() - started


def template_times(tmp: Path) -> tuple[float, float]:
    """Start-up with an empty template cache, then again with the template it built."""
    cache = tmp / "cache"
    cache.mkdir(parents=True)
    DEFAULT_APT_CACHE.mkdir(parents=True, exist_ok=True)
    (cache / "apt").symlink_to(DEFAULT_APT_CACHE)  # packages as usual; the template is what is measured
    _, cold = _start(tmp / "cold", cache)
    control.down(tmp / "cold")
    _, warm = _start(tmp / "warm", cache)
    control.down(tmp / "warm")
    return cold, warm


def _ssh_ok(ip: str, key: Path) -> bool:
    args = ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=2", f"root@{ip}", "true"]
    return subprocess.run(args, capture_output=True, timeout=30).returncode == 0


def _create_until_ssh(client: Client, name: str, key_id: int, key: Path) -> float:
    from hcloud.ssh_keys import SSHKey

    started = time.monotonic()
    made = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 ssh_keys=[SSHKey(id=key_id)])
    ip = made.server.public_net.ipv4.ip
    while not _ssh_ok(ip, key):
        if time.monotonic() - started > 300:
            raise RuntimeError(f"{name} ({ip}) did not answer SSH within 300 s")
        time.sleep(0.2)
    return time.monotonic() - started


def _mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_pss_mib() -> list[float]:
    """PSS of each running machine (every process in its cgroup), MiB."""
    root = next((p / CGROUP_GROUP for p in (CGROUP_ROOT / "unified", CGROUP_ROOT / "systemd", CGROUP_ROOT)
                 if (p / CGROUP_GROUP).is_dir()), None)
    if root is None:
        return []
    return [sum(_pss_kib(pid) for pid in cgroup_pids(cg)) / 1024 for cg in sorted(root.iterdir()) if cg.is_dir()]


def servers(tmp: Path, sizes: list[int]) -> None:
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    running, _ = _start(tmp / "lc", Path("/var/cache/localcloud"))
    try:
        client = Client(token=running.token, api_endpoint=running.endpoint, poll_interval=0.2)
        key_id = client.ssh_keys.create(name="bench", public_key=key.with_suffix(".pub").read_text()).id
        print(f"{'servers':>8} {'slowest create->SSH':>20} {'median':>8}")
        for size in sizes:
            for s in client.servers.get_all():
                s.delete().wait_until_finished()
            time.sleep(2)
            before = _mem_available_kib()
            names = [f"bench-{size}-{i}" for i in range(size)]
            with ThreadPoolExecutor(max_workers=size) as pool:
                took = list(pool.map(lambda name: _create_until_ssh(client, name, key_id, key), names))
            print(f"{size:>8} {max(took):>19.1f}s {statistics.median(took):>7.1f}s", flush=True)
            if size == max(sizes):
                time.sleep(20)  # let first-boot work settle: idle machines
                pss = machine_pss_mib()
                dropped = (before - _mem_available_kib()) / 1024 / size
                print(f"memory per idle server: PSS median {statistics.median(pss):.0f} MiB "
                      f"(min {min(pss):.0f}, max {max(pss):.0f}, {len(pss)} machines); "
                      f"MemAvailable drop {dropped:.0f} MiB per server")
    finally:
        control.down(tmp / "lc")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,10", help="batch sizes of servers created at once")
    parser.add_argument("--skip-template", action="store_true", help="skip the cold/warm template build")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("hosts_bench: needs root (real hosts)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="hosts-bench-", dir="/var/tmp") as tmp:
        if not args.skip_template:
            cold, warm = template_times(Path(tmp) / "template")
            print(f"template build: cold {cold:.1f}s (start-up included), warm start-up {warm:.1f}s", flush=True)
        servers(Path(tmp), [int(s) for s in args.sizes.split(",")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
