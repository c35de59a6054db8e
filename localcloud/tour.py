"""A short tour that shows localcloud serving: the real hcloud-python client builds a tiny
environment (SSH key, private network, firewall, two servers, a volume, a load balancer),
then the tour prints what exists and how many API requests it took.

Run by ``invoke demo`` (and the README's quick start) against a running localcloud.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from hcloud import Client
from hcloud.firewalls import BoundFirewall, FirewallResource, FirewallRule
from hcloud.images import Image
from hcloud.load_balancer_types import LoadBalancerType
from hcloud.load_balancers import (
    CreateLoadBalancerResponse,
    LoadBalancerHealthCheck,
    LoadBalancerService,
    LoadBalancerTarget,
)
from hcloud.locations import Location
from hcloud.networks import BoundNetwork, NetworkSubnet
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer, Server
from hcloud.ssh_keys import BoundSSHKey
from hcloud.volumes import CreateVolumeResponse
from rich.console import Console
from rich.table import Table

# Any: some hcloud-python create() signatures annotate labels as str although they send a dict
LABELS: Any = {"nornos.io/env": "tour", "managed-by": "localcloud-tour"}
TOUR_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ tour@localcloud"


def side(endpoint: str, path: str) -> Any:
    url = endpoint.removesuffix("/v1") + "/_localcloud/" + path
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def clean(client: Client) -> None:
    """Remove what an earlier tour left, found by label (no state file)."""
    selector = "managed-by=localcloud-tour"
    for lb in client.load_balancers.get_all(label_selector=selector):
        lb.delete()
    for volume in client.volumes.get_all(label_selector=selector):
        if volume.server is not None:
            volume.detach().wait_until_finished()
        volume.delete()
    for server in client.servers.get_all(label_selector=selector):
        server.delete().wait_until_finished()
    for fw in client.firewalls.get_all(label_selector=selector):
        if fw.applied_to:  # a firewall is in use while applied, even by a selector that matches nothing
            for action in fw.remove_from_resources(fw.applied_to):
                action.wait_until_finished()
        fw.delete()
    for net in client.networks.get_all(label_selector=selector):
        net.delete()
    for key in client.ssh_keys.get_all(label_selector=selector):
        key.delete()


def run(endpoint: str, token: str, console: Console | None = None) -> None:
    console = console or Console()
    client = Client(token=token, api_endpoint=endpoint, poll_interval=0.2, application_name="localcloud-tour")
    before = side(endpoint, "stats")["requests"]
    with console.status("cleaning up an earlier tour"):
        clean(client)
    with console.status("creating an SSH key, a network and a firewall"):
        key, net, fw = _create_key_network_firewall(client)
    with console.status("creating two servers and waiting for them to run"):
        first = _create_servers(client, key, net)
    with console.status("creating a volume and a load balancer"):
        vol = _create_volume(client, first)
        lb = _create_load_balancer(client, net)

    console.print(_summary(client, endpoint, net, fw, vol, lb))
    stats = side(endpoint, "stats")
    console.print(f"The tour took {stats['requests'] - before} API requests. localcloud keeps running: "
                  f"export HCLOUD_ENDPOINT={endpoint} HCLOUD_TOKEN={token} and use hcloud-python or the "
                  "hcloud CLI against it; `invoke localcloud.down` stops it.")


def _create_key_network_firewall(client: Client) -> tuple[BoundSSHKey, BoundNetwork, BoundFirewall]:
    """The admin's SSH key, a private network, and a firewall that reaches the servers by label."""
    key = client.ssh_keys.create(name="tour-admin", public_key=TOUR_KEY, labels=LABELS)
    net = client.networks.create(name="tour-net", ip_range="10.0.0.0/16", labels=LABELS,
                                 subnets=[NetworkSubnet(type="cloud", ip_range="10.0.1.0/24",
                                                        network_zone="eu-central")])
    fw = client.firewalls.create(
        name="tour-fw", labels=LABELS,
        rules=[FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["192.0.2.0/24"],
                            description="SSH from the admin network")],
        resources=[FirewallResource(type="label_selector", label_selector=_selector("nornos.io/env=tour"))],
    ).firewall
    return key, net, fw


def _create_servers(client: Client, key: BoundSSHKey, net: BoundNetwork) -> BoundServer:
    """Two web servers, both running when this returns; the first one."""
    responses = [client.servers.create(name=f"tour-web-{i}", server_type=ServerType(name="cx23"),
                                       image=Image(name="debian-12"), location=Location(name="fsn1"),
                                       ssh_keys=[key], networks=[net], labels={**LABELS, "role": "web"})
                 for i in (1, 2)]
    for resp in responses:
        resp.action.wait_until_finished()
        for nxt in resp.next_actions:
            nxt.wait_until_finished()
    return responses[0].server


def _create_volume(client: Client, server: BoundServer) -> CreateVolumeResponse:
    """A formatted volume attached to ``server``, its actions finished."""
    vol = client.volumes.create(size=10, name="tour-data", labels=LABELS, server=server,
                                automount=False, format="ext4")
    vol.action.wait_until_finished()
    for nxt in vol.next_actions:
        nxt.wait_until_finished()
    return vol


def _create_load_balancer(client: Client, net: BoundNetwork) -> CreateLoadBalancerResponse:
    """A load balancer on the network whose targets are the web servers, by label."""
    lb = client.load_balancers.create(
        name="tour-lb", load_balancer_type=LoadBalancerType(name="lb11"), location=Location(name="fsn1"),
        labels=LABELS, network=net,
        services=[LoadBalancerService(protocol="tcp", listen_port=80, destination_port=80, proxyprotocol=False,
                                      health_check=LoadBalancerHealthCheck(
                                          protocol="tcp", port=80, interval=10, timeout=5, retries=3))],
        targets=[LoadBalancerTarget(type="label_selector", label_selector=_lb_selector("role=web"),
                                    use_private_ip=True)],
    )
    lb.action.wait_until_finished()
    return lb


def _summary(client: Client, endpoint: str, net: BoundNetwork, fw: BoundFirewall, vol: CreateVolumeResponse,
             lb: CreateLoadBalancerResponse) -> Table:
    """What the tour made, as it exists now."""
    table = Table(title=f"localcloud at {endpoint}")
    for column in ("resource", "name", "where", "addresses / details"):
        table.add_column(column)
    for server in client.servers.get_all(label_selector="managed-by=localcloud-tour"):
        table.add_row("server", server.name, server.location.name if server.location else "-",
                      _server_addresses(server) + f"  ({server.status})")
    table.add_row("network", net.name, "eu-central", "10.0.0.0/16, subnet 10.0.1.0/24")
    table.add_row("firewall", fw.name, "-", "in tcp/22 from 192.0.2.0/24, applied by label nornos.io/env=tour")
    assert vol.volume.id is not None and lb.load_balancer.id is not None
    volume = client.volumes.get_by_id(vol.volume.id)
    table.add_row("volume", volume.name, "fsn1", f"{volume.size} GB at {volume.linux_device}")
    balancer = client.load_balancers.get_by_id(lb.load_balancer.id)
    lb_ip = balancer.public_net.ipv4.ip if balancer.public_net and balancer.public_net.ipv4 else "-"
    matched = len((balancer.targets or [])[0].targets or []) if balancer.targets else 0
    table.add_row("load balancer", balancer.name, "fsn1", f"{lb_ip}:80 -> {matched} servers by label role=web")
    return table


def _server_addresses(server: Server) -> str:
    public = server.public_net.ipv4.ip if server.public_net and server.public_net.ipv4 else "-"
    private = ", ".join(p.ip for p in server.private_net or [])
    return f"public {public}, private {private}"


def _selector(text: str) -> Any:
    from hcloud.firewalls import FirewallResourceLabelSelector

    return FirewallResourceLabelSelector(selector=text)


def _lb_selector(text: str) -> Any:
    from hcloud.load_balancers import LoadBalancerTargetLabelSelector

    return LoadBalancerTargetLabelSelector(selector=text)
