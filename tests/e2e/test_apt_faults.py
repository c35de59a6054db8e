"""Host deploys through a failing apt proxy, on real machines.

localcloud starts with 20 % of the machines' apt requests failing (10 % answered 503, 10 %
cut midway); the base role on two fresh machines still converges in ONE pyinfra run, a
second run changes nothing, and a host left with missing lists under a fresh stamp (the
state that once stopped every later deploy) recovers in the next run. Concurrent requests
for one index file, the race that broke apt-cacher-ng, all get the file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType

from localcloud.hosts.aptproxy import CACHE_PORT, PORT
from tests.conftest import TOKEN, LocalCloud
from tests.e2e.conftest import assert_nothing_left, ssh
from tests.e2e.test_api_hosts import start_with_hosts, stop_with_hosts

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PROXY = f"http://198.51.100.1:{PORT}"
FAULTS = {"apt": [{"fault": "error", "rate": 0.1, "status": 503}, {"fault": "cut", "rate": 0.1}]}
ACNG_ERRORS = Path("/var/cache/localcloud/apt/log/apt-cacher.err")  # start_with_hosts keeps the default cache
INDEX = "http://deb.debian.org/debian/dists/bookworm/InRelease"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STAMP = "/var/lib/apt/periodic/update-success-stamp"


@dataclass
class Site:
    lc: LocalCloud
    key: Path
    work: Path
    ips: dict[str, str]  # server name -> public IPv4

    def deploy(self) -> subprocess.CompletedProcess[str]:
        """pyinfra -y with the base role on every machine, as an admin would run it."""
        cmd = [str(Path(sys.executable).parent / "pyinfra"), "-y", str(self.work / "inventory.py"),
               str(self.work / "deploy.py"), "--user", "root", "--key", str(self.key),
               "--data", "ssh_strict_host_key_checking=off", "--data", "ssh_known_hosts_file=/dev/null"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=ROOT)

    def on(self, name: str, command: str) -> str:
        return ssh(self.key, self.ips[name], command).stdout.strip()

    def fired(self) -> list[int]:
        return [rule["fired"] for rule in self.lc.side("GET", "faults")["apt"]]


@pytest.fixture(scope="module")
def site(workdir: Path, ssh_key: Path) -> Iterator[Site]:
    work = workdir / "apt-faults"
    lc = start_with_hosts(work / "lc", extra=("--faults", json.dumps(FAULTS)))
    try:
        client = Client(token=TOKEN, api_endpoint=lc.endpoint, poll_interval=0.2, poll_max_retries=3000)
        key = client.ssh_keys.create(name="admin", public_key=ssh_key.with_suffix(".pub").read_text())
        ips = {}
        for name in ("apt-1", "apt-2"):
            made = client.servers.create(name=name, server_type=ServerType(name="cx23"),
                                         image=Image(name="debian-12"), ssh_keys=[key])
            made.action.wait_until_finished()
            for action in made.next_actions:
                action.wait_until_finished()
            ips[name] = client.servers.get_by_id(made.server.id).public_net.ipv4.ip
        hosts = [(name, {"ssh_hostname": ip}) for name, ip in ips.items()]
        (work / "inventory.py").write_text(f"machines = {hosts!r}\n")
        (work / "deploy.py").write_text("from nornos_infra.roles.base import base\n\nbase()\n")
        yield Site(lc, ssh_key, work, ips)
    finally:
        stop_with_hosts(lc)
        assert "machines powered off" in lc.log.read_text()
        assert_nothing_left()


def errors_of(run: subprocess.CompletedProcess[str]) -> str:
    lines = [ANSI.sub("", line) for line in (run.stdout + run.stderr).splitlines()]
    return "\n".join(line for line in lines if "rror" in line or "nornos:" in line)[-6000:]


def changed_operations(log: str) -> list[str]:
    """Rows of pyinfra's results table whose Success column is not "-"."""
    lines = [ANSI.sub("", line).strip() for line in log.splitlines()]
    header = next(i for i, line in enumerate(lines) if line.split() == ["Operation", "Hosts", "Success", "Error",
                                                                          "No", "Change"])
    end = next(i for i in range(header, len(lines)) if lines[i].startswith("Grand total"))
    return [line for line in lines[header + 1:end] if line.split()[-3] != "-"]


def fetch_all(url: str, clients: int) -> Counter[str]:
    """``clients`` requests for one file at the same moment, as new machines make them."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": PROXY}))
    results: Counter[str] = Counter()
    start = threading.Barrier(clients)

    def one() -> None:
        start.wait()
        try:
            with opener.open(urllib.request.Request(url, headers={"Cache-Control": "max-age=0"}), timeout=60) as r:
                results[f"{r.status} {len(r.read())}"] += 1
        except OSError as exc:
            results[f"failed: {exc}"] += 1

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_for_one_index_all_get_it(site: Site) -> None:
    # from this machine (never given injected faults): only apt-cacher-ng's own behaviour counts
    before = ACNG_ERRORS.read_text(errors="replace").count("out of the way") if ACNG_ERRORS.exists() else 0
    results: Counter[str] = Counter()
    for _ in range(4):
        results += fetch_all(INDEX, 8)
    assert len(results) == 1 and next(iter(results)).startswith("200 "), results
    after = ACNG_ERRORS.read_text(errors="replace").count("out of the way") if ACNG_ERRORS.exists() else 0
    assert after == before
    # apt-cacher-ng itself is on loopback only: the machines cannot go around the forwarder
    probe = ssh(site.key, site.ips["apt-1"], f"timeout 5 bash -c '</dev/tcp/198.51.100.1/{CACHE_PORT}'", check=False)
    assert probe.returncode != 0


def test_a_deploy_converges_in_one_run_through_20_percent_apt_faults(site: Site) -> None:
    first = site.deploy()
    assert first.returncode == 0, errors_of(first)
    assert all(n > 0 for n in site.fired()), site.fired()  # both kinds of fault hit this run
    for name in site.ips:
        assert site.on(name, "apt-cache policy nftables | sed -n 3p").startswith("Candidate: ")
        assert site.on(name, "dpkg-query -W -f '${Status}' unattended-upgrades") == "install ok installed"
    again = site.deploy()  # faults still on: a converged host asks the proxy for nothing
    assert again.returncode == 0, errors_of(again)
    assert changed_operations(again.stderr) == []


def test_missing_lists_under_a_fresh_stamp_recover(site: Site) -> None:
    # the state that once blocked every later deploy: lists without bookworm main, a fresh stamp
    site.on("apt-1", "rm -f /var/lib/apt/lists/*_dists_bookworm_main_* /var/lib/apt/lists/*_dists_bookworm_InRelease"
                     f" && touch {STAMP} && DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq nftables >/dev/null")
    assert site.on("apt-1", "ls /var/lib/apt/lists/ | grep -c '_dists_bookworm_main_' || true") == "0"
    run = site.deploy()
    assert run.returncode == 0, errors_of(run)
    assert site.on("apt-1", "ls /var/lib/apt/lists/ | grep -c '_dists_bookworm_main_binary-amd64_Packages'") == "1"
    assert site.on("apt-1", "dpkg-query -W -f '${Status}' nftables") == "install ok installed"
    changed = changed_operations(run.stderr)
    assert any("Update apt lists" in row for row in changed) and any("Install base packages" in row
                                                                        for row in changed)


def test_faults_change_at_run_time_through_the_side_door(site: Site) -> None:
    site.lc.side("PUT", "faults", {"apt": [{"fault": "error", "status": 502, "times": 1,
                                            "path": "/debian/dists/bookworm/InRelease"}]})
    failed = ssh(site.key, site.ips["apt-2"], "apt-get update -q -o APT::Update::Error-Mode=any", check=False)
    assert failed.returncode == 100 and "502" in failed.stdout + failed.stderr
    assert site.fired() == [1]
    ssh(site.key, site.ips["apt-2"], "apt-get update -q -o APT::Update::Error-Mode=any")  # times: 1
    site.lc.side("PUT", "faults", {})
    assert site.lc.side("GET", "faults")["apt"] == []
