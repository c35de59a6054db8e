"""Cloud firewalls on real machines, driven through hcloud-python: enforced outside the
machine on its public interface only, from the API's rules and applied_to (by label
selector and by server), following rule, label and membership changes. Probes come from
this machine (the admin's workstation), from another host on the internet (a namespace on
the public bridge) and from the other server, publicly and over the private network."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hcloud import Client
from hcloud.firewalls import FirewallResource, FirewallResourceLabelSelector, FirewallRule
from hcloud.networks import NetworkSubnet

from localcloud.hosts import firewall as cloud_firewall
from localcloud.hosts import network
from tests.conftest import TOKEN, LocalCloud
from tests.e2e.conftest import assert_nothing_left, ssh
from tests.e2e.test_api_hosts import create, start_with_hosts, stop_with_hosts

pytestmark = pytest.mark.e2e
ADMIN = "198.51.100.1/32"  # this machine, on the public bridge


@pytest.fixture(scope="module")
def cloud(workdir: Path) -> Iterator[LocalCloud]:
    lc = start_with_hosts(workdir / "firewall-hosts")
    try:
        yield lc
    finally:
        stop_with_hosts(lc)
        assert_nothing_left()


@pytest.fixture
def client(cloud: LocalCloud) -> Iterator[Client]:
    cloud.reset()
    yield Client(token=TOKEN, api_endpoint=cloud.endpoint, poll_interval=0.2, poll_max_retries=3000)
    cloud.reset()


def _open_from_here(ip: str, port: int) -> bool:
    return subprocess.run(["timeout", "3", "bash", "-c", f"</dev/tcp/{ip}/{port}"],
                          capture_output=True).returncode == 0


def _open_from_ns(ns: str, ip: str, port: int) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "timeout", "3", "bash", "-c", f"</dev/tcp/{ip}/{port}"],
                          capture_output=True).returncode == 0


def _open_from_server(key: Path, via: str, ip: str, port: int) -> bool:
    out = ssh(key, via, f"timeout 3 bash -c '</dev/tcp/{ip}/{port}' && echo open || echo shut").stdout
    return out.strip() == "open"


def _ping_from_ns(ns: str, ip: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W2", ip], capture_output=True).returncode == 0


def _eventually(check: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def _wait(actions: list) -> None:  # type: ignore[type-arg]
    for action in actions:
        action.wait_until_finished()


def test_cloud_firewalls_filter_the_public_interface(client: Client, ssh_key: Path) -> None:
    key = client.ssh_keys.create(name="admin", public_key=ssh_key.with_suffix(".pub").read_text())
    net = client.networks.create(name="private", ip_range="10.60.0.0/16",
                                 subnets=[NetworkSubnet(type="cloud", ip_range="10.60.1.0/24",
                                                        network_zone="eu-central")])
    db = create(client, "db-1", key, net)
    app = create(client, "app-1", key, net)
    db.update(labels={"role": "db"})
    db_ip, app_ip = db.public_net.ipv4.ip, app.public_net.ipv4.ip
    db_private, app_private = db.private_net[0].ip, app.private_net[0].ip
    # another host on the internet, at an address the API reserved (an unassigned primary IP)
    probe_ip = client.primary_ips.create(type="ipv4", name="internet-host", assignee_type="server",
                                         location=db.location).primary_ip.ip
    probe = network.add_internet_host(1, probe_ip)
    try:
        assert _open_from_ns(probe, db_ip, 22) and _ping_from_ns(probe, db_ip)  # no firewall: all open

        ssh_admin = FirewallRule(direction="in", protocol="tcp", port="22", source_ips=[ADMIN])
        ping = FirewallRule(direction="in", protocol="icmp", source_ips=["0.0.0.0/0", "::/0"])
        made = client.firewalls.create(name="db", rules=[ssh_admin, ping], resources=[
            FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector(selector="role=db"))])
        _wait(made.actions)
        fw = made.firewall

        assert _open_from_here(db_ip, 22)  # the admin's address is allowed
        assert not _open_from_ns(probe, db_ip, 22)  # any other internet host is not
        assert _ping_from_ns(probe, db_ip)  # ICMP is allowed from anywhere
        assert _open_from_ns(probe, app_ip, 22)  # app-1 carries no firewall
        assert not _open_from_server(ssh_key, app_ip, db_ip, 22)  # app-1's public address is just another host
        assert _open_from_server(ssh_key, app_ip, db_private, 22)  # the private network is not filtered
        assert _open_from_server(ssh_key, db_ip, app_ip, 22)  # outbound is free without outbound rules

        # new rules take effect: the internet host is let in
        _wait(fw.set_rules([ssh_admin, ping, FirewallRule(direction="in", protocol="tcp", port="22",
                                                          source_ips=[f"{probe_ip}/32"])]))
        assert _open_from_ns(probe, db_ip, 22)

        # an outbound rule: only HTTPS leaves db-1's public side; private traffic still flows
        _wait(fw.set_rules([ssh_admin, FirewallRule(direction="out", protocol="tcp", port="443",
                                                    destination_ips=["0.0.0.0/0", "::/0"])]))
        assert _open_from_here(db_ip, 22)  # replies to allowed inbound traffic always pass
        assert not _open_from_server(ssh_key, db_ip, app_ip, 22)
        assert _open_from_server(ssh_key, db_ip, app_private, 22)
        assert not _ping_from_ns(probe, db_ip)  # ICMP is no longer allowed in

        # the label selector follows labels: db-1 leaves it, nothing filters it any more (no action
        # to wait for: the filters follow within moments)
        db.update(labels={"role": "none"})
        assert _eventually(lambda: _open_from_ns(probe, db_ip, 22) and _ping_from_ns(probe, db_ip))

        # applied to a server directly, then removed
        _wait(fw.apply_to_resources([FirewallResource(type="server", server=app)]))
        assert not _open_from_ns(probe, app_ip, 22) and _open_from_here(app_ip, 22)
        _wait(fw.remove_from_resources([FirewallResource(type="server", server=app)]))
        _wait(fw.remove_from_resources([FirewallResource(
            type="label_selector", label_selector=FirewallResourceLabelSelector(selector="role=db"))]))
        assert _open_from_ns(probe, app_ip, 22)
        nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
        assert cloud_firewall.TABLE not in nft  # nothing guarded: no table at all
    finally:
        network.remove_internet_host(1)
