"""Issue 10, finding 1, on real machines: with the Kubernetes API enabled (``kube_api: true``),
an internet host outside the admin networks finds SSH (22) and the Kubernetes API (6443)
closed on every public address, the load balancer's and each server's; the admin (this
machine, 198.51.100.1) finds SSH open on every server and the API open on the control plane,
and the load balancer never carries 6443 (docs/adr/0004-kube-api-exposure.md).

provision.py provisions the env on localcloud's real machines (cloud firewalls enforced outside
the machines, the load balancer as HAProxy); a stand-in API server listens on 6443 of every
server (no k3s binary offline), so "closed" means filtered or not forwarded, never "nothing
listens". Run it alone, holding the real-host lock:
``flock /tmp/nornos-realhosts.lock .venv/bin/pytest -p no:cacheprovider tests/e2e/test_exposure_hosts.py``."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from localcloud.hosts import network
from nornos_infra.admin_key import ensure_keypair
from tests.conftest import TOKEN, LocalCloud
from tests.e2e.conftest import assert_nothing_left, ssh
from tests.e2e.test_api_hosts import start_with_hosts

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ADMIN = "198.51.100.1"  # this machine on localcloud's public side
# a stand-in for the API server on every server: a TCP listener on 6443 (and 22 is sshd)
LISTEN_6443 = "systemd-run --unit nornos-fake-api --collect python3 -m http.server 6443 >/dev/null 2>&1 || true"


@pytest.fixture(scope="module")
def hosted() -> Iterator[tuple[LocalCloud, Path]]:
    with tempfile.TemporaryDirectory(prefix="exposure-hosts-") as tmp:
        lc = start_with_hosts(Path(tmp) / "lc")
        try:
            yield lc, Path(tmp)
        finally:
            network.remove_internet_host(7)
            lc.stop()
            assert_nothing_left()


def provision(lc: LocalCloud, work: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HCLOUD_ENDPOINT": lc.endpoint, "HCLOUD_TOKEN": TOKEN, "NORNOS_POLL_INTERVAL": "0.2"}
    cmd = [sys.executable, str(ROOT / "provision.py"), "exposure", "--yes", "--env-dir", str(work / "environments"),
           "--inventory-dir", str(work / "inventories"), *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)


def open_from_here(ip: str, port: int) -> bool:
    return subprocess.run(["timeout", "3", "bash", "-c", f"</dev/tcp/{ip}/{port}"],
                          capture_output=True).returncode == 0


def open_from_ns(ns: str, ip: str, port: int) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "timeout", "3", "bash", "-c", f"</dev/tcp/{ip}/{port}"],
                          capture_output=True).returncode == 0


def eventually(check: Any, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def test_ssh_and_the_kube_api_only_from_the_admin_networks(hosted: tuple[LocalCloud, Path]) -> None:
    lc, work = hosted
    key = work / "ssh" / "id_ed25519"
    public_key = ensure_keypair(key)
    data: dict[str, Any] = yaml.safe_load((ROOT / "environments" / "dev.yaml").read_text())
    data.update(name="exposure", admin_cidrs=[f"{ADMIN}/32"],
                ssh_keys=[{"name": "admin", "public_key_file": str(public_key)}],
                pools={"control-plane": {"role": "k3s_server", "server_type": "cx23", "count": 1},
                       "workers": {"role": "k3s_agent", "server_type": "cx23", "count": 1}},
                load_balancer={"type": "lb11", "services": [80, 443], "kube_api": True})
    (work / "environments").mkdir()
    (work / "environments" / "exposure.yaml").write_text(yaml.safe_dump(data))

    first = provision(lc, work)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    inventory = runpy.run_path(str(work / "inventories" / "exposure.py"))
    hosts = {name: host for group in ("k3s_servers", "k3s_agents") for name, host in inventory[group][0]}
    common = inventory["k3s_servers"][1]
    assert common["kube_api_via_lb"] is True
    lb_ip = common["lb_public_ipv4"]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    lbs = requests.get(f"{lc.endpoint}/load_balancers", headers=headers, timeout=10).json()["load_balancers"]
    assert [sorted(s["listen_port"] for s in lb["services"]) for lb in lbs] == [[80, 443]]

    for host in hosts.values():
        ssh(key, host["ssh_hostname"], LISTEN_6443)
        assert eventually(lambda h=host: "LISTEN" in ssh(key, h["ssh_hostname"], "ss -ltn 'sport = :6443'").stdout)

    # another host on the internet, at an address the API reserved (an unassigned primary IP)
    probe_ip = requests.post(f"{lc.endpoint}/primary_ips", headers=headers, timeout=10, json={
        "name": "internet-host", "type": "ipv4", "assignee_type": "server", "location": "fsn1",
        "auto_delete": False}).json()["primary_ip"]["ip"]
    outsider = network.add_internet_host(7, probe_ip)

    servers = {name: host["public_ipv4"] for name, host in hosts.items()}
    control_plane = next(h["public_ipv4"] for n, h in hosts.items() if "control-plane" in n)
    # the probe works: the internet reaches the load balancer's app port
    assert eventually(lambda: open_from_ns(outsider, lb_ip, 80), 30), "the internet host reaches nothing at all"
    for address in [lb_ip, *servers.values()]:
        for port in (22, 6443):
            assert not open_from_ns(outsider, address, port), f"{address}:{port} is open to the internet"
    for name, address in servers.items():
        assert open_from_here(address, 22), f"SSH on {name} is closed to the admin"
    assert open_from_here(control_plane, 6443), "the Kubernetes API is closed to the admin"
    assert not open_from_here(lb_ip, 6443), "the load balancer carries 6443"

    gone = provision(lc, work, "--destroy")
    assert gone.returncode == 0, gone.stderr[-3000:]
