"""Load balancers on real machines, driven through hcloud-python: HAProxy on the load balancer's
public IP forwards to the servers a label selector picks (their private IPs), only to those
whose health check passes; the API reports the checks' verdicts; targets follow the servers'
labels; a killed localcloud's load balancer is cleaned up and made again from --state."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import requests
from hcloud import Client
from hcloud.images import Image
from hcloud.load_balancer_types import LoadBalancerType
from hcloud.load_balancers import (
    LoadBalancerHealthCheck,
    LoadBalancerHealthCheckHttp,
    LoadBalancerService,
    LoadBalancerServiceHttp,
    LoadBalancerTarget,
    LoadBalancerTargetLabelSelector,
)
from hcloud.locations import Location
from hcloud.networks import BoundNetwork, NetworkSubnet
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer
from hcloud.ssh_keys import BoundSSHKey

from tests.conftest import TOKEN, LocalCloud
from tests.e2e.conftest import assert_nothing_left, ssh
from tests.e2e.test_api_hosts import start_with_hosts, stop_with_hosts

pytestmark = pytest.mark.e2e
T = TypeVar("T")

# a web server answering its hostname on 8080, as a unit: it comes back after a reboot
WEB_USER_DATA = """#cloud-config
write_files:
  - path: /etc/systemd/system/web.service
    content: |
      [Unit]
      Description=tiny web server behind the load balancer
      After=network.target
      [Service]
      ExecStartPre=/bin/sh -c 'mkdir -p /srv/www && hostname > /srv/www/index.html'
      ExecStart=/usr/bin/python3 -m http.server 8080 --directory /srv/www
      [Install]
      WantedBy=multi-user.target
runcmd:
  - systemctl daemon-reload
  - systemctl enable --now --no-block web.service
"""
INTERVAL = 3  # the API's minimum health check interval


@dataclass
class Running:
    """The localcloud under test; the test replaces it when it kills and restarts it."""

    state: Path
    lc: LocalCloud

    def client(self) -> Client:
        return Client(token=TOKEN, api_endpoint=self.lc.endpoint, poll_interval=0.2, poll_max_retries=3000)


@pytest.fixture(scope="module")
def cloud(workdir: Path) -> Iterator[Running]:
    state = workdir / "lb-hosts"
    running = Running(state, start_with_hosts(state))
    try:
        yield running
    finally:
        stop_with_hosts(running.lc)
        assert_nothing_left()


def haproxies() -> list[int]:
    """HAProxy processes of localcloud's load balancers (their config is under /run/localcloud/lb)."""
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"haproxy") and any(b"/run/localcloud/lb/" in c for c in cmd):
                out.append(int(proc.name))
    return out


def netns_list() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def web_server(client: Client, name: str, key: BoundSSHKey, net: BoundNetwork, labels: dict[str, str]) -> BoundServer:
    created = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                    ssh_keys=[key], networks=[net], labels=labels, user_data=WEB_USER_DATA)
    created.action.wait_until_finished()
    for action in created.next_actions:
        action.wait_until_finished()
    return client.servers.get_by_id(created.server.id)


def health(client: Client, lb_id: int) -> dict[str, str]:
    """Server name -> health of the http service, as the API reports it (label selector targets)."""
    lb = client.load_balancers.get_by_id(lb_id)
    (selector,) = lb.targets
    names = {s.id: s.name for s in client.servers.get_all()}
    return {names[t.server.id]: t.health_status[0].status for t in selector.targets or []}


def answers(ip: str, n: int = 12) -> list[str]:
    """What n requests to the load balancer got back (each a new connection: round robin)."""
    return [requests.get(f"http://{ip}/", timeout=10).text.strip() for _ in range(n)]


def test_a_load_balancer_forwards_to_healthy_targets_only(cloud: Running, ssh_key: Path) -> None:
    client = cloud.client()
    key = client.ssh_keys.create(name="admin", public_key=ssh_key.with_suffix(".pub").read_text())
    net = client.networks.create(name="private", ip_range="10.70.0.0/16",
                                 subnets=[NetworkSubnet(type="cloud", ip_range="10.70.1.0/24",
                                                        network_zone="eu-central")])
    web1 = web_server(client, "web-1", key, net, {"role": "web"})
    web_server(client, "web-2", key, net, {"role": "web"})

    service = LoadBalancerService(
        protocol="http", listen_port=80, destination_port=8080, proxyprotocol=False,
        http=LoadBalancerServiceHttp(cookie_name="HCLBSTICKY", cookie_lifetime=300, timeout_idle=50,
                                     sticky_sessions=False),
        health_check=LoadBalancerHealthCheck(
            protocol="http", port=8080, interval=INTERVAL, timeout=2, retries=1,
            http=LoadBalancerHealthCheckHttp(path="/", status_codes=["2??"], tls=False)))
    created = client.load_balancers.create(
        name="web", load_balancer_type=LoadBalancerType(name="lb11"), location=Location(name="fsn1"), network=net,
        services=[service], targets=[LoadBalancerTarget(
            type="label_selector", label_selector=LoadBalancerTargetLabelSelector(selector="role=web"),
            use_private_ip=True)])
    created.action.wait_until_finished()
    lb_id = created.load_balancer.id
    lb_ip = client.load_balancers.get_by_id(lb_id).public_net.ipv4.ip
    assert f"lc-lb{lb_id}" in netns_list()

    # both servers pass their health check and get requests
    wait_for("both targets healthy", lambda: health(client, lb_id) == {"web-1": "healthy", "web-2": "healthy"})
    assert set(answers(lb_ip)) == {"web-1", "web-2"}

    # web-1's web server stops: its check fails, the API says so, and only web-2 gets requests
    ssh(ssh_key, web1.public_net.ipv4.ip, "systemctl stop web.service")
    wait_for("web-1 unhealthy", lambda: health(client, lb_id) == {"web-1": "unhealthy", "web-2": "healthy"},
             timeout=6 * INTERVAL)
    assert set(answers(lb_ip)) == {"web-2"}

    # it comes back: healthy again, and requests reach it again
    ssh(ssh_key, web1.public_net.ipv4.ip, "systemctl start web.service")
    wait_for("web-1 healthy again", lambda: health(client, lb_id)["web-1"] == "healthy", timeout=6 * INTERVAL)
    assert set(answers(lb_ip)) == {"web-1", "web-2"}

    # a new server with the label joins by itself; without the label it leaves
    web3 = web_server(client, "web-3", key, net, {"role": "web"})
    wait_for("web-3 healthy", lambda: health(client, lb_id).get("web-3") == "healthy", timeout=60)
    assert set(answers(lb_ip, 15)) == {"web-1", "web-2", "web-3"}
    web3.update(labels={"role": "retired"})  # no action to wait for: the proxy follows within moments
    assert "web-3" not in health(client, lb_id)
    wait_for("web-3 out of the proxy", lambda: "web-3" not in answers(lb_ip, 6), timeout=15)
    assert set(answers(lb_ip, 15)) == {"web-1", "web-2"}

    # localcloud killed: its load balancer outlives it; the next start removes it and makes it
    # again from --state, and it forwards once the machines are up again
    assert haproxies()
    cloud.lc.proc.send_signal(signal.SIGKILL)
    cloud.lc.proc.wait()
    assert haproxies() and f"lc-lb{lb_id}" in netns_list()
    cloud.lc = start_with_hosts(cloud.state)
    assert f"process lb-{lb_id}" in cloud.lc.log.read_text()  # cleanup: removed leftover process lb-<id> (...)
    client = cloud.client()
    wait_for("both targets healthy after the restart",
             lambda: health(client, lb_id) == {"web-1": "healthy", "web-2": "healthy"}, timeout=180)
    assert set(answers(lb_ip)) == {"web-1", "web-2"}

    # deleted: HAProxy stops, its namespace and links go
    client.load_balancers.delete(client.load_balancers.get_by_id(lb_id)).action.wait_until_finished()
    assert not haproxies()
    assert f"lc-lb{lb_id}" not in netns_list()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{lb_ip}/", timeout=3)
