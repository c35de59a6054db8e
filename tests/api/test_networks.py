"""Networks through the real hcloud-python client: lifecycle, subnets, routes, ip range, protection."""

from __future__ import annotations

from typing import Any

import pytest
from hcloud import APIException, Client
from hcloud.images.domain import Image
from hcloud.networks.client import BoundNetwork
from hcloud.networks.domain import NetworkRoute, NetworkSubnet
from hcloud.server_types.domain import ServerType
from hcloud.servers.client import BoundServer
from hcloud.servers.domain import ServerCreatePublicNetwork

from tests.conftest import LocalCloud


def subnet(ip_range: str | None, zone: str = "eu-central", kind: str = "cloud",
           vswitch_id: int | None = None) -> NetworkSubnet:
    return NetworkSubnet(type=kind, ip_range=ip_range, network_zone=zone, vswitch_id=vswitch_id)


def make_network(client: Client, name: str = "net", ip_range: str = "10.0.0.0/16", **kwargs: Any) -> BoundNetwork:
    return client.networks.create(name=name, ip_range=ip_range, **kwargs)


def api_error(fn: Any, *args: Any, **kwargs: Any) -> APIException:
    with pytest.raises(APIException) as exc:
        result = fn(*args, **kwargs)
        if hasattr(result, "wait_until_finished"):
            result.wait_until_finished()
    return exc.value


def fields(exc: APIException) -> set[str]:
    return {f["name"] for f in (exc.details or {}).get("fields", [])}


def test_lifecycle(client: Client) -> None:
    net = make_network(client, subnets=[subnet("10.0.1.0/24")],
                       routes=[NetworkRoute(destination="10.100.1.0/24", gateway="10.0.1.1")],
                       labels={"nornos.io/env": "dev"}, expose_routes_to_vswitch=True)
    assert net.ip_range == "10.0.0.0/16"
    [sub] = net.subnets
    assert (sub.type, sub.ip_range, sub.network_zone, sub.gateway) == ("cloud", "10.0.1.0/24", "eu-central",
                                                                       "10.0.0.1")
    assert [(r.destination, r.gateway) for r in net.routes] == [("10.100.1.0/24", "10.0.1.1")]
    assert net.servers == [] and net.protection == {"delete": False} and net.expose_routes_to_vswitch is True

    assert client.networks.get_by_name("net").id == net.id
    assert [n.id for n in client.networks.get_all(label_selector="nornos.io/env=dev")] == [net.id]
    assert client.networks.get_all(label_selector="nornos.io/env=prod") == []

    updated = client.networks.update(net, name="net2", labels={"a": "b"}, expose_routes_to_vswitch=False)
    assert (updated.name, updated.labels, updated.expose_routes_to_vswitch) == ("net2", {"a": "b"}, False)
    assert client.networks.delete(updated) is True
    assert api_error(client.networks.get_by_id, net.id).code == "not_found"


def test_list_sorts_and_names_are_unique(client: Client) -> None:
    for name, rng in (("b", "10.1.0.0/16"), ("a", "10.2.0.0/16"), ("c", "10.3.0.0/16")):
        make_network(client, name, rng)
    listed = client.request("GET", "/networks", params={"sort": "name:desc"})["networks"]
    assert [n["name"] for n in listed] == ["c", "b", "a"]
    page = client.networks.get_list(page=2, per_page=2)
    assert [n.name for n in page.networks] == ["c"] and page.meta.pagination.total_entries == 3
    exc = api_error(make_network, client, "a", "10.9.0.0/16")
    assert exc.code == "uniqueness_error"


@pytest.mark.parametrize("ip_range", ["8.8.0.0/16", "10.0.0.0/25", "10.0.0.1/16", "172.32.0.0/16", "not-a-cidr",
                                      "fd00::/64", "192.168.0.0/15"])
def test_create_rejects_bad_ip_range(client: Client, ip_range: str) -> None:
    exc = api_error(make_network, client, ip_range=ip_range)
    assert exc.code == "invalid_input"
    assert fields(exc) == {"ip_range"}


def test_create_accepts_every_private_block_edge(client: Client) -> None:
    for i, rng in enumerate(("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "192.168.5.0/24")):
        assert make_network(client, f"n{i}", rng).ip_range == rng


def test_create_validates_subnets(client: Client) -> None:
    exc = api_error(make_network, client, subnets=[subnet("10.1.0.0/24")])
    assert exc.code == "invalid_input" and fields(exc) == {"subnets[0].ip_range"}
    exc = api_error(make_network, client, subnets=[subnet("10.0.1.0/31")])
    assert exc.code == "invalid_input" and fields(exc) == {"subnets[0].ip_range"}
    exc = api_error(make_network, client, subnets=[subnet("10.0.1.0/24", zone="mars-north")])
    assert exc.code == "invalid_input" and fields(exc) == {"subnets[0].network_zone"}
    exc = api_error(make_network, client, subnets=[subnet("10.0.1.0/24", kind="vswitch")])
    assert exc.code == "invalid_input" and fields(exc) == {"subnets[0].vswitch_id"}
    exc = api_error(make_network, client, subnets=[subnet("10.0.1.0/24", vswitch_id=1000)])
    assert exc.code == "invalid_input" and fields(exc) == {"subnets[0].vswitch_id"}
    exc = api_error(make_network, client, subnets=[subnet("10.0.0.0/20"), subnet("10.0.1.0/24")])
    assert exc.code == "networks_overlap"
    assert client.networks.get_all() == []


def test_subnets_in_every_zone_and_a_vswitch(client: Client) -> None:
    zones = ("eu-central", "us-east", "us-west", "ap-southeast")
    net = make_network(client, subnets=[subnet(f"10.0.{i}.0/24", zone=z) for i, z in enumerate(zones)]
                       + [subnet("10.0.100.0/24", kind="vswitch", vswitch_id=1000)])
    assert [s.network_zone for s in net.subnets] == [*zones, "eu-central"]
    vswitch = net.subnets[-1]
    assert (vswitch.type, vswitch.vswitch_id, vswitch.gateway) == ("vswitch", 1000, "10.0.100.1")
    assert {s.gateway for s in net.subnets[:-1]} == {"10.0.0.1"}


def test_add_and_delete_subnet(client: Client) -> None:
    net = make_network(client, subnets=[subnet("10.0.1.0/24")])
    action = net.add_subnet(subnet(None))  # no ip_range: the first free /24
    assert action.command == "add_subnet"
    action.wait_until_finished()
    assert action.status == "success"
    assert action.resources == [{"id": net.id, "type": "network"}]
    net.add_subnet(subnet(None)).wait_until_finished()
    net.add_subnet(subnet("10.0.128.0/17")).wait_until_finished()
    net = client.networks.get_by_id(net.id)
    assert [s.ip_range for s in net.subnets] == ["10.0.1.0/24", "10.0.0.0/24", "10.0.2.0/24", "10.0.128.0/17"]

    net.delete_subnet(subnet("10.0.0.0/24")).wait_until_finished()
    assert [s.ip_range for s in client.networks.get_by_id(net.id).subnets] == [
        "10.0.1.0/24", "10.0.2.0/24", "10.0.128.0/17"]
    commands = [a.command for a in net.get_actions(sort=["id"])]
    assert commands == ["add_subnet", "add_subnet", "add_subnet", "delete_subnet"]
    assert {a.command for a in client.networks.actions.get_all()} == {"add_subnet", "delete_subnet"}


def test_subnet_errors(client: Client) -> None:
    net = make_network(client, "small", "10.0.0.0/24", subnets=[subnet("10.0.0.0/25")],
                       routes=[NetworkRoute(destination="10.0.0.128/26", gateway="10.0.0.2")])
    exc = api_error(net.add_subnet, subnet("10.0.0.64/26"))
    assert exc.code == "networks_overlap"
    exc = api_error(net.add_subnet, subnet("10.0.0.160/27"))  # inside the route's destination
    assert exc.code == "networks_overlap"
    exc = api_error(net.add_subnet, subnet("10.0.1.0/24"))
    assert exc.code == "invalid_input" and fields(exc) == {"ip_range"}
    exc = api_error(net.add_subnet, subnet(None))  # no free /24 left
    assert exc.code == "invalid_input" and fields(exc) == {"ip_range"}
    exc = api_error(net.add_subnet, subnet("10.0.0.192/27", zone="moon"))
    assert exc.code == "invalid_input" and fields(exc) == {"network_zone"}
    exc = api_error(net.delete_subnet, subnet("10.0.0.192/27"))
    assert exc.code == "invalid_input" and fields(exc) == {"ip_range"}
    net.add_subnet(subnet("10.0.0.192/30")).wait_until_finished()  # a /30 is the smallest subnet
    assert len(client.networks.get_by_id(net.id).subnets) == 2


def test_routes(client: Client) -> None:
    net = make_network(client, subnets=[subnet("10.0.1.0/24")])
    action = net.add_route(NetworkRoute(destination="192.168.0.0/16", gateway="10.0.1.2"))
    action.wait_until_finished()
    assert (action.command, action.status) == ("add_route", "success")
    net.add_route(NetworkRoute(destination="0.0.0.0/0", gateway="10.0.1.3")).wait_until_finished()
    net = client.networks.get_by_id(net.id)
    assert [(r.destination, r.gateway) for r in net.routes] == [("192.168.0.0/16", "10.0.1.2"),
                                                               ("0.0.0.0/0", "10.0.1.3")]
    net.delete_route(NetworkRoute(destination="192.168.0.0/16", gateway="10.0.1.2")).wait_until_finished()
    assert [r.destination for r in client.networks.get_by_id(net.id).routes] == ["0.0.0.0/0"]
    exc = api_error(net.delete_route, NetworkRoute(destination="192.168.0.0/16", gateway="10.0.1.2"))
    assert exc.code == "invalid_input"


@pytest.mark.parametrize(("destination", "gateway", "code", "field"), [
    ("8.8.8.0/24", "10.0.1.2", "invalid_input", "destination"),       # not private
    ("172.31.0.0/16", "10.0.1.2", "invalid_input", "destination"),     # holds 172.31.1.1
    ("10.100.0.1/16", "10.0.1.2", "invalid_input", "destination"),     # host bits
    ("10.100.0.0/16", "10.1.0.2", "invalid_input", "gateway"),         # outside the network
    ("10.100.0.0/16", "10.0.0.1", "invalid_input", "gateway"),         # the network's first IP
    ("10.100.0.0/16", "10.0.0.300", "invalid_input", "gateway"),       # no IP at all
    ("10.0.1.0/25", "10.0.1.2", "networks_overlap", None),             # a subnet
    ("10.200.0.0/16", "10.0.1.2", "networks_overlap", None),           # another route
])
def test_route_errors(client: Client, destination: str, gateway: str, code: str, field: str | None) -> None:
    net = make_network(client, subnets=[subnet("10.0.1.0/24")],
                       routes=[NetworkRoute(destination="10.200.0.0/16", gateway="10.0.1.9")])
    exc = api_error(net.add_route, NetworkRoute(destination=destination, gateway=gateway))
    assert exc.code == code
    if field is not None:
        assert fields(exc) == {field}
    exc = api_error(make_network, client, "other", "10.0.0.0/16",
                    routes=[NetworkRoute(destination=destination, gateway=gateway),
                            NetworkRoute(destination="10.200.0.0/16", gateway="10.0.1.9")],
                    subnets=[subnet("10.0.1.0/24")])
    assert exc.code == code


def test_route_gateway_must_not_be_behind_a_vswitch(client: Client) -> None:
    net = make_network(client, subnets=[subnet("10.0.2.0/24", kind="vswitch", vswitch_id=7)])
    exc = api_error(net.add_route, NetworkRoute(destination="10.100.0.0/16", gateway="10.0.2.5"))
    assert exc.code == "invalid_input" and fields(exc) == {"gateway"}


def test_change_ip_range_only_grows(client: Client) -> None:
    net = make_network(client, subnets=[subnet("10.0.1.0/24")])
    action = net.change_ip_range("10.0.0.0/12")
    action.wait_until_finished()
    assert (action.command, action.status) == ("change_ip_range", "success")
    net = client.networks.get_by_id(net.id)
    assert net.ip_range == "10.0.0.0/12"
    assert net.subnets[0].gateway == "10.0.0.1"
    net.add_subnet(subnet("10.8.0.0/16")).wait_until_finished()  # the new space is usable
    for bad in ("10.0.0.0/16", "10.0.0.0/13", "10.16.0.0/12", "11.0.0.0/8", "10.0.0.0/7", "10.0.0.0/33"):
        exc = api_error(net.change_ip_range, bad)
        assert exc.code == "invalid_input", bad
        assert fields(exc) == {"ip_range"}
    assert client.networks.get_by_id(net.id).ip_range == "10.0.0.0/12"


def test_delete_protection(client: Client) -> None:
    net = make_network(client)
    action = net.change_protection(delete=True)
    assert (action.command, action.status) == ("change_protection", "success")
    assert client.networks.get_by_id(net.id).protection == {"delete": True}
    exc = api_error(net.delete)
    assert exc.code == "protected"
    net.change_protection(delete=False)
    assert net.delete() is True
    assert client.networks.get_all() == []


def test_unknown_network(client: Client) -> None:
    assert api_error(client.networks.get_by_id, 999).code == "not_found"
    ghost = BoundNetwork(client.networks, {"id": 999}, complete=False)
    assert api_error(ghost.add_subnet, subnet("10.0.1.0/24")).code == "not_found"
    assert api_error(ghost.change_ip_range, "10.0.0.0/8").code == "not_found"


# -- with servers ----------------------------------------------------------------------------
def make_server(client: Client, name: str, wait: bool = True, **kwargs: Any) -> BoundServer:
    created = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                    **kwargs)
    if wait:
        for action in [created.action, *created.next_actions]:
            action.wait_until_finished()
    return client.servers.get_by_id(created.server.id)


def private_only() -> ServerCreatePublicNetwork:
    return ServerCreatePublicNetwork(enable_ipv4=False, enable_ipv6=False)


def test_servers_are_computed_from_attachments(client: Client) -> None:
    net = make_network(client, subnets=[subnet("10.0.1.0/24"), subnet("10.0.2.0/24")])
    one = make_server(client, "one", networks=[net])
    two = make_server(client, "two")
    two.attach_to_network(net, ip="10.0.2.7").wait_until_finished()
    net = client.networks.get_by_id(net.id)
    assert sorted(s.id for s in net.servers) == sorted([one.id, two.id])
    assert client.servers.get_by_id(one.id).private_net[0].ip == "10.0.1.1"

    exc = api_error(net.delete_subnet, subnet("10.0.2.0/24"))
    assert exc.code == "service_error"
    two.detach_from_network(net).wait_until_finished()
    assert [s.id for s in client.networks.get_by_id(net.id).servers] == [one.id]
    net.delete_subnet(subnet("10.0.2.0/24")).wait_until_finished()
    assert [s.ip_range for s in client.networks.get_by_id(net.id).subnets] == ["10.0.1.0/24"]

    one.delete().wait_until_finished()
    assert client.networks.get_by_id(net.id).servers == []


def test_delete_detaches_servers(client: Client) -> None:
    net = make_network(client, subnets=[subnet("10.0.1.0/24")])
    server = make_server(client, "one", networks=[net])
    assert [s.id for s in client.networks.get_by_id(net.id).servers] == [server.id]
    assert net.delete() is True
    assert client.servers.get_by_id(server.id).private_net == []


def test_a_network_holds_at_most_100_servers(client: Client, localcloud: LocalCloud) -> None:
    limits = localcloud.side("GET", "config")["limits"]
    localcloud.side("PUT", "config", {"limits": {"servers": 101}})
    try:
        net = make_network(client, subnets=[subnet("10.0.0.0/24")])
        for i in range(100):
            make_server(client, f"s{i}", wait=False, networks=[net], public_net=private_only())
        assert len(client.networks.get_by_id(net.id).servers) == 100
        exc = api_error(make_server, client, "s100", wait=False, networks=[net], public_net=private_only())
        assert exc.code == "resource_limit_exceeded"
        assert exc.details == {"limits": [{"name": "servers_per_network"}]}
    finally:
        localcloud.side("PUT", "config", {"limits": {"servers": limits["servers"]}})


def test_changes_while_an_action_runs_answer_conflict(client: Client, localcloud: LocalCloud) -> None:
    """hcloud-python retries ``conflict`` by itself, so the second change still succeeds."""
    net = make_network(client)
    scale = localcloud.side("GET", "config")["time_scale"]
    # add_subnet now takes 5 s: the route is sent while it runs on any machine, however loaded (at
    # time scale 20 it took 1 s, and a slow machine sent the route after it had finished)
    localcloud.side("PUT", "config", {"time_scale": 100})
    try:
        first = net.add_subnet(subnet("10.0.1.0/24"))
        second = net.add_route(NetworkRoute(destination="10.100.0.0/16", gateway="10.0.1.2"))
    finally:
        localcloud.side("PUT", "config", {"time_scale": scale})
    first.wait_until_finished()
    second.wait_until_finished()
    log = localcloud.requests_log()
    codes = [e["code"] for e in log if e["path"].endswith("/actions/add_route")]
    assert codes[0] == "conflict" and codes[-1] is None and set(codes[1:-1]) <= {"conflict"}
    assert len(client.networks.get_by_id(net.id).routes) == 1
