"""Primary IPs through the real hcloud-python client: standalone, on servers, assign/unassign."""

from __future__ import annotations

import ipaddress

from hcloud import Client
from hcloud.locations import Location
from hcloud.primary_ips import PrimaryIP
from hcloud.servers import ServerCreatePublicNetwork

from tests.api.test_servers import PUBLIC_V4, api_error, create, field_names


def test_create_get_update_protect_delete(client: Client) -> None:
    resp = client.primary_ips.create(type="ipv4", name="front", location=Location(name="fsn1"),
                                     labels={"role": "front"})
    assert resp.action is None
    ip = resp.primary_ip
    assert any(ipaddress.ip_address(ip.ip) in net for net in PUBLIC_V4)
    assert (ip.location.name, ip.assignee_id, ip.auto_delete, ip.blocked) == ("fsn1", None, False, False)
    assert ip.dns_ptr[0]["ip"] == ip.ip and ip.dns_ptr[0]["dns_ptr"].startswith("static.")
    assert client.primary_ips.get_by_name("front").id == ip.id

    v6 = client.primary_ips.create(type="ipv6", name="front6", location=Location(name="fsn1")).primary_ip
    net = ipaddress.ip_network(v6.ip)
    assert net.prefixlen == 64 and net.subnet_of(ipaddress.ip_network("2001:db8::/32"))
    assert v6.dns_ptr == []
    assert [p.id for p in client.primary_ips.get_list(ip=v6.ip).primary_ips] == [v6.id]
    assert [p.id for p in client.primary_ips.get_all(label_selector="role=front")] == [ip.id]

    updated = client.primary_ips.update(ip, name="front-2", labels={}, auto_delete=True)
    assert (updated.name, updated.labels, updated.auto_delete) == ("front-2", {}, True)
    client.primary_ips.change_dns_ptr(ip, ip.ip, "front.example.com").wait_until_finished()
    assert client.primary_ips.get_by_id(ip.id).dns_ptr == [{"ip": ip.ip, "dns_ptr": "front.example.com"}]
    exc = api_error(client.primary_ips.change_dns_ptr, ip, "192.0.2.250", "x.example.com")
    assert exc.code == "invalid_input" and field_names(exc) == {"ip"}

    client.primary_ips.change_protection(ip, delete=True).wait_until_finished()
    assert api_error(client.primary_ips.delete, ip).code == "protected"
    client.primary_ips.change_protection(ip, delete=False).wait_until_finished()
    assert client.primary_ips.delete(ip) is True
    assert api_error(client.primary_ips.get_by_id, ip.id).code == "not_found"


def test_create_errors(client: Client) -> None:
    client.primary_ips.create(type="ipv4", name="taken", location=Location(name="fsn1"))
    exc = api_error(client.primary_ips.create, type="ipv4", name="taken", location=Location(name="fsn1"))
    assert exc.code == "uniqueness_error"
    exc = api_error(client.primary_ips.create, type="ipv4", name="nowhere")
    assert exc.code == "invalid_input" and field_names(exc) == {"location"}
    exc = api_error(client.primary_ips.create, type="ipv4", name="mars", location=Location(name="mars1"))
    assert exc.code == "invalid_input" and field_names(exc) == {"location"}


def test_server_with_own_primary_ip_keeps_it(client: Client) -> None:
    own = client.primary_ips.create(type="ipv4", name="own", location=Location(name="nbg1")).primary_ip
    v6 = client.primary_ips.create(type="ipv6", name="own6", location=Location(name="nbg1")).primary_ip
    exc = api_error(create, client, "bad", location=None, public_net=ServerCreatePublicNetwork(ipv4=v6))
    assert exc.code == "primary_ip_version_mismatch"
    exc = api_error(create, client, "far", location="fsn1", public_net=ServerCreatePublicNetwork(ipv4=own))
    assert exc.code == "primary_ip_datacenter_mismatch"

    server = create(client, "own", location=None, public_net=ServerCreatePublicNetwork(ipv4=own, enable_ipv6=False))
    assert server.location.name == "nbg1"  # taken from the primary IP
    assert server.public_net.primary_ipv4.id == own.id and server.public_net.ipv4.ip == own.ip
    assert server.public_net.ipv6 is None
    exc = api_error(create, client, "again", location=None, public_net=ServerCreatePublicNetwork(ipv4=own))
    assert exc.code == "primary_ip_assigned"

    client.servers.delete(server).wait_until_finished()
    kept = client.primary_ips.get_by_id(own.id)  # auto_delete false: it stays, unassigned
    assert kept.assignee_id is None


def test_assign_and_unassign(client: Client) -> None:
    server = create(client, "srv", location="hel1")
    spare = client.primary_ips.create(type="ipv4", name="spare", location=Location(name="hel1")).primary_ip
    auto = server.public_net.primary_ipv4

    exc = api_error(client.primary_ips.unassign, PrimaryIP(id=auto.id))
    assert exc.code == "server_not_stopped"
    client.servers.power_off(server).wait_until_finished()
    exc = api_error(client.primary_ips.assign, spare, server.id, "server")
    assert exc.code == "server_has_ipv4"
    exc = api_error(client.primary_ips.delete, PrimaryIP(id=auto.id))
    assert exc.code == "must_be_unassigned"

    client.primary_ips.unassign(PrimaryIP(id=auto.id)).wait_until_finished()
    assert client.servers.get_by_id(server.id).public_net.ipv4 is None
    client.primary_ips.assign(spare, server.id, "server").wait_until_finished()
    server = client.servers.get_by_id(server.id)
    assert (server.public_net.primary_ipv4.id, server.public_net.ipv4.ip) == (spare.id, spare.ip)
    assert client.primary_ips.get_by_id(spare.id).assignee_id == server.id

    other = create(client, "other", location="hel1", start_after_create=False)
    exc = api_error(client.primary_ips.assign, spare, other.id, "server")
    assert exc.code == "primary_ip_already_assigned"
    exc = api_error(client.primary_ips.assign, PrimaryIP(id=auto.id), 999_999, "server")
    assert exc.code == "invalid_input"

    actions = client.primary_ips.get_actions_list(spare).actions
    assert [a.command for a in actions] == ["assign_primary_ip"]
    client.servers.delete(server).wait_until_finished()
    assert client.primary_ips.get_by_id(spare.id).assignee_id is None
