"""Servers through the real hcloud-python client: lifecycle, errors, actions, networking."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from hcloud import APIException, Client
from hcloud.firewalls import FirewallResource, FirewallResourceLabelSelector, FirewallRule
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.networks import BoundNetwork, NetworkSubnet
from hcloud.placement_groups import PlacementGroup
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer, ServerCreatePublicNetwork
from hcloud.ssh_keys import SSHKey

from tests.conftest import LocalCloud

PUBLIC_V4 = [ipaddress.ip_network(n) for n in ("198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24")]


def create(client: Client, name: str, *, server_type: str = "cx23", image: str = "debian-12",
           location: str | None = "fsn1", **kwargs: Any) -> BoundServer:
    """Create a server and wait for its action and next actions, as a provisioning tool would."""
    img = Image(name=str(image))  # ids as strings too: the spec types ``image`` as a string
    resp = client.servers.create(name=name, server_type=ServerType(name=server_type), image=img,
                                 location=Location(name=location) if location else None, **kwargs)
    resp.action.wait_until_finished()
    for action in resp.next_actions:
        action.wait_until_finished()
    return client.servers.get_by_id(resp.server.id)


def api_error(fn: Any, *args: Any, **kwargs: Any) -> APIException:
    with pytest.raises(APIException) as exc:
        fn(*args, **kwargs)
    return exc.value


def field_names(exc: APIException) -> set[str]:
    return {f["name"] for f in (exc.details or {}).get("fields", [])}


@pytest.fixture
def slow_actions(localcloud: LocalCloud) -> Iterator[None]:
    """Actions take seconds instead of milliseconds, so that a server stays locked."""
    before = localcloud.side("GET", "config")["time_scale"]
    localcloud.side("PUT", "config", {"time_scale": 20})
    try:
        yield
    finally:
        localcloud.side("PUT", "config", {"time_scale": before})


def make_network(client: Client, name: str = "net", ip_range: str = "10.0.0.0/16",
                 subnet: str = "10.0.1.0/24") -> BoundNetwork:
    return client.networks.create(name=name, ip_range=ip_range, subnets=[
        NetworkSubnet(type="cloud", ip_range=subnet, network_zone="eu-central")])


# -- lifecycle ------------------------------------------------------------------------------
def test_create_get_update_delete(client: Client, ssh_public_key: str) -> None:
    key = client.ssh_keys.create(name="admin", public_key=ssh_public_key)
    resp = client.servers.create(name="web-1", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 location=Location(name="fsn1"), ssh_keys=[SSHKey(name=key.name)],
                                 labels={"role": "web"})  # by name: the spec types ssh_keys as strings
    assert resp.root_password is None
    assert resp.server.status == "initializing"
    assert resp.action.command == "create_server"
    assert [a.command for a in resp.next_actions] == ["start_server"]
    resp.action.wait_until_finished()
    for action in resp.next_actions:
        action.wait_until_finished()

    server = client.servers.get_by_name("web-1")
    assert server.id == resp.server.id and server.status == "running"
    assert server.server_type.name == "cx23" and server.location.name == "fsn1"
    assert server.image.name == "debian-12" and server.image.architecture == "x86"
    assert server.primary_disk_size == 40 and server.included_traffic and server.included_traffic > 0
    assert server.labels == {"role": "web"} and server.protection == {"delete": False, "rebuild": False}
    assert any(ipaddress.ip_address(server.public_net.ipv4.ip) in net for net in PUBLIC_V4)
    assert ipaddress.ip_network(server.public_net.ipv6.ip).prefixlen == 64
    assert server.public_net.ipv4.dns_ptr.startswith("static.")
    ipv4 = client.primary_ips.get_by_id(server.public_net.primary_ipv4.id)
    assert ipv4.auto_delete is True and ipv4.assignee_id == server.id and ipv4.location.name == "fsn1"
    raw = client.request("GET", f"/servers/{server.id}")["server"]
    assert raw["datacenter"]["name"] == "fsn1-dc14" and raw["locked"] is False

    updated = client.servers.update(server, name="web-2", labels={"role": "db"})
    assert (updated.name, updated.labels) == ("web-2", {"role": "db"})

    action = client.servers.delete(updated)
    assert action.command == "delete_server"
    action.wait_until_finished()
    assert api_error(client.servers.get_by_id, server.id).code == "not_found"
    assert client.primary_ips.get_all() == []  # auto_delete primary IPs went with the server


def test_root_password_without_ssh_keys_and_ipv4_only(client: Client) -> None:
    resp = client.servers.create(name="pw", server_type=ServerType(name="cx23"), image=Image(name="ubuntu-24.04"),
                                 public_net=ServerCreatePublicNetwork(enable_ipv4=True, enable_ipv6=False),
                                 start_after_create=False)
    assert resp.root_password and len(resp.root_password) >= 12
    assert resp.next_actions == []
    resp.action.wait_until_finished()
    server = client.servers.get_by_id(resp.server.id)
    assert server.status == "off"
    assert server.public_net.ipv6 is None and server.public_net.ipv4 is not None
    assert server.location.name in {"fsn1", "nbg1", "hel1"}  # picked where cx23 is sold


def test_arm_server_gets_the_arm_image(client: Client) -> None:
    server = create(client, "arm", server_type="cax11")
    assert server.image.name == "debian-12" and server.image.architecture == "arm"


# -- create errors --------------------------------------------------------------------------
def test_unknown_references_are_invalid_input_naming_the_field(client: Client) -> None:
    for kwargs, field in (({"server_type": "zz99"}, "server_type"), ({"image": "nope-1"}, "image"),
                          ({"location": "mars1"}, "location")):
        exc = api_error(create, client, "x", **kwargs)
        assert exc.code == "invalid_input", kwargs
        assert field in field_names(exc)
    exc = api_error(create, client, "x", image="999999999")
    assert exc.code == "invalid_input" and field_names(exc) == {"image"}
    exc = api_error(create, client, "bad_name!")
    assert exc.code == "invalid_input" and field_names(exc) == {"name"}
    assert client.servers.get_all() == []


def test_deprecated_or_unsupported_type_is_invalid_input(client: Client) -> None:
    for server_type, location in (("cx11", "fsn1"), ("cx22", "nbg1"), ("cpx11", "fsn1")):
        exc = api_error(create, client, "x", server_type=server_type, location=location)
        assert exc.code == "invalid_input", server_type
        assert "server_type" in field_names(exc)


def test_sold_out_type_is_resource_unavailable(client: Client, localcloud: LocalCloud) -> None:
    localcloud.side("PUT", "faults", {"unavailable": [{"server_type": "cx23", "location": "fsn1"}]})
    exc = api_error(create, client, "x", location="fsn1")
    assert exc.code == "resource_unavailable"
    server = create(client, "elsewhere", location=None)  # the API picks another location
    assert server.location.name != "fsn1"


def test_duplicate_name_and_project_limit(client: Client, localcloud: LocalCloud) -> None:
    create(client, "one", start_after_create=False)
    exc = api_error(create, client, "one")
    assert exc.code == "uniqueness_error"
    before = localcloud.side("GET", "config")["limits"]["servers"]
    localcloud.side("PUT", "config", {"limits": {"servers": 2}})
    try:
        create(client, "two", start_after_create=False)
        exc = api_error(create, client, "three")
        assert exc.code == "resource_limit_exceeded"
        assert exc.details == {"limits": [{"name": "servers"}]}
    finally:
        localcloud.side("PUT", "config", {"limits": {"servers": before}})


# -- actions --------------------------------------------------------------------------------
def test_power_actions_walk_the_status(client: Client) -> None:
    server = create(client, "p")
    action = client.servers.power_off(server)
    assert action.command == "stop_server"
    assert client.servers.get_by_id(server.id).status in ("stopping", "off")
    action.wait_until_finished()
    assert client.servers.get_by_id(server.id).status == "off"
    assert [s.id for s in client.servers.get_all(status=["off"])] == [server.id]
    assert client.servers.get_all(status=["running"]) == []
    client.servers.power_on(server).wait_until_finished()
    assert client.servers.get_by_id(server.id).status == "running"
    for act in (client.servers.reboot, client.servers.reset):
        act(server).wait_until_finished()
        assert client.servers.get_by_id(server.id).status == "running"
    client.servers.shutdown(server).wait_until_finished()
    assert client.servers.get_by_id(server.id).status == "off"
    commands = {a.command for a in client.servers.get_actions_list(server).actions}
    assert {"create_server", "start_server", "stop_server", "reboot_server", "reset_server",
            "shutdown_server"} <= commands


def test_actions_on_a_busy_server_are_locked(client: Client, slow_actions: None) -> None:
    resp = client.servers.create(name="busy", server_type=ServerType(name="cx23"), image=Image(name="debian-12"))
    exc = api_error(client.servers.power_off, resp.server)
    assert exc.code == "locked"
    assert client.servers.get_by_id(resp.server.id).locked is True


def test_change_type(client: Client) -> None:
    server = create(client, "t")
    exc = api_error(client.servers.change_type, server, ServerType(name="cx33"), upgrade_disk=False)
    assert exc.code == "server_not_stopped"
    client.servers.power_off(server).wait_until_finished()

    client.servers.change_type(server, ServerType(name="cx33"), upgrade_disk=False).wait_until_finished()
    server = client.servers.get_by_id(server.id)
    assert (server.server_type.name, server.primary_disk_size, server.status) == ("cx33", 40, "off")
    client.servers.change_type(server, ServerType(name="cx23"), upgrade_disk=False).wait_until_finished()
    client.servers.change_type(server, ServerType(name="cx43"), upgrade_disk=True).wait_until_finished()
    server = client.servers.get_by_id(server.id)
    assert (server.server_type.name, server.primary_disk_size) == ("cx43", 160)

    for target in ("cx23", "cax11", "cx22"):  # smaller disk, other architecture, deprecated
        exc = api_error(client.servers.change_type, server, ServerType(name=target), upgrade_disk=False)
        assert exc.code == "invalid_server_type", target
    exc = api_error(client.servers.change_type, server, ServerType(name="zz99"), upgrade_disk=False)
    assert exc.code == "invalid_input" and field_names(exc) == {"server_type"}


def test_networks_attach_detach_and_alias_ips(client: Client) -> None:
    net = make_network(client)
    other = make_network(client, "other", "10.1.0.0/16", "10.1.0.0/24")
    server = create(client, "n", networks=[net])
    assert [(p.network.id, p.ip) for p in server.private_net] == [(net.id, "10.0.1.1")]
    assert server.private_net[0].mac_address.count(":") == 5
    assert client.networks.get_by_id(net.id).servers[0].id == server.id

    exc = api_error(client.servers.attach_to_network, server, net)
    assert exc.code == "server_already_attached"
    exc = api_error(client.servers.attach_to_network, server, other, ip="10.1.0.1")  # the gateway
    assert exc.code == "ip_not_available"
    client.servers.attach_to_network(server, other, ip="10.1.0.7", alias_ips=["10.1.0.8"]).wait_until_finished()
    server = client.servers.get_by_id(server.id)
    assert {(p.network.id, p.ip, tuple(p.alias_ips)) for p in server.private_net} == {
        (net.id, "10.0.1.1", ()), (other.id, "10.1.0.7", ("10.1.0.8",))}

    client.servers.change_alias_ips(server, other, ["10.1.0.8", "10.1.0.9"]).wait_until_finished()
    second = create(client, "n2", networks=[other])
    assert second.private_net[0].ip not in {"10.1.0.7", "10.1.0.8", "10.1.0.9"}
    exc = api_error(client.servers.change_alias_ips, second, other, [second.private_net[0].ip, "10.1.0.7"])
    assert exc.code == "ip_not_available"

    client.servers.detach_from_network(server, other).wait_until_finished()
    exc = api_error(client.servers.detach_from_network, server, other)
    assert exc.code == "server_not_attached_to_network"
    assert [p.network.id for p in client.servers.get_by_id(server.id).private_net] == [net.id]


def test_snapshot_then_create_from_it_and_rebuild(client: Client) -> None:
    server = create(client, "src", image="ubuntu-24.04")
    resp = client.servers.create_image(server, description="golden", labels={"kind": "golden"})
    assert resp.image.type == "snapshot" and resp.image.status == "creating"
    assert resp.image.created_from.id == server.id
    resp.action.wait_until_finished()
    image = client.images.get_by_id(resp.image.id)
    assert (image.status, image.os_flavor, image.description) == ("available", "ubuntu", "golden")

    clone = create(client, "clone", image=str(image.id))
    assert clone.image.id == image.id and clone.image.type == "snapshot"

    client.servers.change_protection(clone, delete=True, rebuild=True).wait_until_finished()
    assert api_error(client.servers.rebuild, clone, Image(name="debian-12")).code == "protected"
    assert api_error(client.servers.delete, clone).code == "protected"
    client.servers.change_protection(clone, delete=False, rebuild=False).wait_until_finished()

    rebuilt = client.servers.rebuild(clone, Image(name="debian-12"))
    assert rebuilt.root_password
    assert client.servers.get_by_id(clone.id).status == "rebuilding"
    rebuilt.action.wait_until_finished()
    clone = client.servers.get_by_id(clone.id)
    assert (clone.image.name, clone.status) == ("debian-12", "running")

    client.servers.delete(server).wait_until_finished()
    assert client.images.get_by_id(image.id).created_from.id == server.id  # snapshots outlive the server


def test_backups_follow_the_backup_option(client: Client) -> None:
    server = create(client, "b")
    exc = api_error(client.servers.create_image, server, type="backup")
    assert exc.code == "invalid_input"
    client.servers.enable_backup(server).wait_until_finished()
    assert client.servers.get_by_id(server.id).backup_window
    resp = client.servers.create_image(server, type="backup")
    resp.action.wait_until_finished()
    assert client.images.get_by_id(resp.image.id).bound_to.id == server.id
    client.servers.disable_backup(server).wait_until_finished()
    assert client.servers.get_by_id(server.id).backup_window is None
    assert api_error(client.images.get_by_id, resp.image.id).code == "not_found"


def test_spread_placement_group_holds_ten(client: Client) -> None:
    group = client.placement_groups.create(name="spread", type="spread").placement_group
    for i in range(10):
        create(client, f"pg-{i}", placement_group=group, start_after_create=False)
    exc = api_error(create, client, "pg-10", placement_group=group)
    assert exc.code == "placement_error"
    first = client.servers.get_by_name("pg-0")
    assert first.placement_group.id == group.id and len(first.placement_group.servers) == 10
    exc = api_error(client.servers.add_to_placement_group, first, PlacementGroup(id=group.id))
    assert exc.code == "already_in_placement_group"
    client.servers.remove_from_placement_group(first).wait_until_finished()
    assert client.servers.get_by_id(first.id).placement_group is None
    client.servers.add_to_placement_group(first, PlacementGroup(id=group.id)).wait_until_finished()
    assert client.servers.get_by_id(first.id).placement_group.id == group.id


def test_firewalls_and_volumes_on_create(client: Client) -> None:
    rule = FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["0.0.0.0/0"])
    direct = client.firewalls.create(name="direct", rules=[rule]).firewall
    by_label = client.firewalls.create(name="by-label", rules=[rule], resources=[
        FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector("role=web"))]).firewall
    volume = client.volumes.create(size=10, name="data", location=Location(name="fsn1")).volume
    server = create(client, "fw", firewalls=[direct], volumes=[volume], labels={"role": "web"})
    assert {(f.firewall.id, f.status) for f in server.public_net.firewalls} == {
        (direct.id, "applied"), (by_label.id, "applied")}
    assert [v.id for v in server.volumes] == [volume.id]
    assert client.volumes.get_by_id(volume.id).server.id == server.id
    applied = client.firewalls.get_by_id(direct.id).applied_to
    assert [(r.type, r.server.id) for r in applied] == [("server", server.id)]

    client.servers.update(server, labels={"role": "db"})
    assert [f.firewall.id for f in client.servers.get_by_id(server.id).public_net.firewalls] == [direct.id]
    client.servers.delete(server).wait_until_finished()
    assert client.volumes.get_by_id(volume.id).server is None
    assert client.firewalls.get_by_id(direct.id).applied_to == []


def test_other_actions(client: Client, ssh_public_key: str) -> None:
    key = client.ssh_keys.create(name="k", public_key=ssh_public_key)
    server = create(client, "misc")
    ip = server.public_net.ipv4.ip
    client.servers.change_dns_ptr(server, ip, "misc.example.com").wait_until_finished()
    assert client.servers.get_by_id(server.id).public_net.ipv4.dns_ptr == "misc.example.com"
    v6 = str(next(ipaddress.ip_network(server.public_net.ipv6.ip).hosts()))
    client.servers.change_dns_ptr(server, v6, "v6.example.com").wait_until_finished()
    assert client.servers.get_by_id(server.id).public_net.ipv6.dns_ptr == [{"ip": v6, "dns_ptr": "v6.example.com"}]
    client.servers.change_dns_ptr(server, ip, None).wait_until_finished()
    assert client.servers.get_by_id(server.id).public_net.ipv4.dns_ptr.startswith("static.")
    exc = api_error(client.servers.change_dns_ptr, server, "192.0.2.200", "x.example.com")
    assert exc.code == "invalid_input" and field_names(exc) == {"ip"}

    rescue = client.servers.enable_rescue(server, type="linux64", ssh_keys=[key.id])
    assert rescue.root_password
    rescue.action.wait_until_finished()
    assert client.servers.get_by_id(server.id).rescue_enabled is True
    client.servers.disable_rescue(server).wait_until_finished()
    assert client.servers.get_by_id(server.id).rescue_enabled is False
    reset = client.servers.reset_password(server)
    assert reset.root_password
    reset.action.wait_until_finished()
    console = client.servers.request_console(server)
    assert console.wss_url.startswith("wss://") and console.password
    console.action.wait_until_finished()


# -- listing --------------------------------------------------------------------------------
def test_label_selector_and_name_listing(client: Client) -> None:
    for name, labels in (("a", {"env": "prod", "tier": "web"}), ("b", {"env": "prod", "tier": "db"}),
                         ("c", {"env": "dev"}), ("d", {})):
        create(client, name, labels=labels, start_after_create=False)

    def names(selector: str) -> list[str]:
        return sorted(s.name for s in client.servers.get_all(label_selector=selector))

    assert names("env=prod") == ["a", "b"]
    assert names("env!=prod") == ["c", "d"]
    assert names("env") == ["a", "b", "c"]
    assert names("!env") == ["d"]
    assert names("env in (dev,prod),tier notin (db)") == ["a", "c"]
    assert [s.name for s in client.servers.get_all(name="c")] == ["c"]
    exc = api_error(client.servers.get_all, label_selector="env=(")
    assert exc.code == "invalid_input"
    body = client.request("GET", "/servers", params={"sort": "name:desc"})
    assert [s["name"] for s in body["servers"]] == ["d", "c", "b", "a"]


def test_pagination_beyond_one_page(client: Client) -> None:
    created = [create(client, f"s-{i:02d}", start_after_create=False).id for i in range(52)]
    assert [s.id for s in client.servers.get_all()] == created  # get_all follows next_page
    page = client.servers.get_list(page=2, per_page=50)
    assert [s.id for s in page.servers] == created[50:]
    assert page.meta.pagination.total_entries == 52 and page.meta.pagination.last_page == 2
    assert page.meta.pagination.next_page is None and page.meta.pagination.previous_page == 1
