"""Firewalls through the real hcloud-python client: rules, the 50-rule cap, apply and remove."""

from __future__ import annotations

from typing import Any

import pytest
from hcloud import APIException, Client
from hcloud.firewalls.client import BoundFirewall
from hcloud.firewalls.domain import FirewallResource, FirewallResourceLabelSelector, FirewallRule
from hcloud.images.domain import Image
from hcloud.networks.domain import NetworkSubnet
from hcloud.server_types.domain import ServerType
from hcloud.servers.client import BoundServer
from hcloud.servers.domain import Server, ServerCreatePublicNetwork

from tests.conftest import SpecRecorder

ANY4, ANY6 = "0.0.0.0/0", "::/0"


def api_error(fn: Any, *args: Any, **kwargs: Any) -> APIException:
    with pytest.raises(APIException) as exc:
        fn(*args, **kwargs)
    return exc.value


def fields(exc: APIException) -> set[str]:
    return {f["name"] for f in (exc.details or {}).get("fields", [])}


def rule_in(port: str | None = "22", protocol: str = "tcp", ips: list[str] | None = None,
            description: str | None = None) -> FirewallRule:
    return FirewallRule(direction="in", protocol=protocol, port=port, source_ips=ips or [ANY4, ANY6],
                        description=description)


def rule_out(port: str | None = "443", protocol: str = "tcp", ips: list[str] | None = None) -> FirewallRule:
    return FirewallRule(direction="out", protocol=protocol, port=port, destination_ips=ips or [ANY4])


def selector(text: str) -> FirewallResource:
    return FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector(selector=text))


def selectors(fw: BoundFirewall) -> list[str]:
    return [r.label_selector.selector for r in fw.applied_to or [] if r.type == "label_selector"]


def wait(actions: list[Any]) -> None:
    for action in actions:
        action.wait_until_finished()
        assert action.status == "success"


def test_lifecycle(client: Client) -> None:
    created = client.firewalls.create(name="web", labels={"nornos.io/role": "web"})
    fw = created.firewall
    assert created.actions == []
    assert (fw.name, fw.rules, fw.applied_to, fw.labels) == ("web", [], [], {"nornos.io/role": "web"})
    assert client.firewalls.get_by_name("web").id == fw.id
    assert [f.id for f in client.firewalls.get_all(label_selector="nornos.io/role")] == [fw.id]
    assert client.firewalls.get_all(label_selector="!nornos.io/role") == []
    updated = client.firewalls.update(fw, name="web2", labels={})
    assert (updated.name, updated.labels) == ("web2", {})
    assert client.firewalls.delete(updated) is True
    assert api_error(client.firewalls.get_by_id, fw.id).code == "not_found"


def test_names_are_unique(client: Client) -> None:
    client.firewalls.create(name="a")
    other = client.firewalls.create(name="b").firewall
    assert api_error(client.firewalls.create, name="a").code == "uniqueness_error"
    assert api_error(client.firewalls.update, other, name="a").code == "uniqueness_error"
    listed = client.request("GET", "/firewalls", params={"sort": "name:desc"})["firewalls"]
    assert [f["name"] for f in listed] == ["b", "a"]


def test_rules_with_every_field(client: Client) -> None:
    rules = [
        rule_in("22", ips=["203.0.113.0/24", "2001:DB8:0:0::/64", "198.51.100.7/32"], description="ssh"),
        rule_in("80-85", protocol="tcp"),
        rule_in("any", protocol="udp"),
        rule_in(None, protocol="icmp"),
        rule_in(None, protocol="gre", ips=["10.0.0.0/8"]),
        rule_out("53", protocol="udp", ips=["9.9.9.9/32", "2620:fe::fe/128"]),
        rule_out(None, protocol="esp"),
        rule_out("1024-65535", protocol="tcp", ips=[ANY4, ANY6]),
    ]
    created = client.firewalls.create(name="fw", rules=rules)
    assert [a.command for a in created.actions] == ["set_firewall_rules"]
    wait(created.actions)
    got = client.firewalls.get_by_id(created.firewall.id).rules
    assert [(r.direction, r.protocol, r.port) for r in got] == [
        ("in", "tcp", "22"), ("in", "tcp", "80-85"), ("in", "udp", "any"), ("in", "icmp", None),
        ("in", "gre", None), ("out", "udp", "53"), ("out", "esp", None), ("out", "tcp", "1024-65535")]
    assert got[0].source_ips == ["203.0.113.0/24", "2001:db8::/64", "198.51.100.7/32"]  # RFC 5952 form
    assert got[0].destination_ips == [] and got[0].description == "ssh"
    assert got[1].description is None
    assert got[5].source_ips == [] and got[5].destination_ips == ["9.9.9.9/32", "2620:fe::fe/128"]


@pytest.mark.parametrize(("rule", "field"), [
    (rule_in(None), "port"),                                          # tcp needs a port
    (rule_in("22", protocol="icmp"), "port"),                         # icmp takes none
    (rule_in("0"), "port"),
    (rule_in("70000"), "port"),
    (rule_in("90-80"), "port"),
    (rule_in("ssh"), "port"),
    (rule_in("22", ips=["10.0.0.1/8"]), "source_ips"),                # host bits
    (rule_in("22", ips=["10.0.0.1"]), "source_ips"),                  # not CIDR
    (rule_in("22", ips=["example.org/32"]), "source_ips"),
    (FirewallRule(direction="in", protocol="tcp", port="22"), "source_ips"),
    (FirewallRule(direction="in", protocol="tcp", port="22", source_ips=[ANY4], destination_ips=[ANY4]),
     "destination_ips"),
    (FirewallRule(direction="out", protocol="tcp", port="22"), "destination_ips"),
    (FirewallRule(direction="out", protocol="tcp", port="22", source_ips=[ANY4], destination_ips=[ANY4]),
     "source_ips"),
])
def test_rule_errors(client: Client, rule: FirewallRule, field: str) -> None:
    exc = api_error(client.firewalls.create, name="fw", rules=[rule_in(), rule])
    assert exc.code == "invalid_input"
    assert fields(exc) == {f"rules[1].{field}"}
    fw = client.firewalls.create(name="ok").firewall
    exc = api_error(fw.set_rules, [rule])
    assert exc.code == "invalid_input"
    assert fields(exc) == {f"rules[0].{field}"}
    assert [f.name for f in client.firewalls.get_all()] == ["ok"]


def test_rule_errors_the_spec_forbids(client: Client, recorder: SpecRecorder) -> None:
    fw = client.firewalls.create(name="fw").firewall
    cases: list[tuple[dict[str, Any], str]] = [
        ({"direction": "sideways", "protocol": "tcp", "port": "22", "source_ips": [ANY4]}, "direction"),
        ({"direction": "in", "protocol": "sctp", "source_ips": [ANY4]}, "protocol"),
        ({"direction": "in", "protocol": "icmp", "source_ips": [ANY4], "description": "x" * 256}, "description"),
        ({"protocol": "icmp", "source_ips": [ANY4]}, "direction"),
    ]
    for rule, field in cases:
        with pytest.raises(APIException) as exc, recorder.invalid_requests():  # the spec's schema forbids each
            client.request("POST", f"/firewalls/{fw.id}/actions/set_rules", json={"rules": [rule]})
        assert exc.value.code == "invalid_input", rule
        assert fields(exc.value) == {f"rules[0].{field}"}, rule
    # "You can specify 100 CIDR blocks at most": the spec says it in prose, its schema has no maxItems,
    # so this request is schema-valid and checked as such
    with pytest.raises(APIException) as exc:
        client.request("POST", f"/firewalls/{fw.id}/actions/set_rules",
                       json={"rules": [{"direction": "in", "protocol": "icmp", "source_ips": [ANY4] * 101}]})
    assert exc.value.code == "invalid_input" and fields(exc.value) == {"rules[0].source_ips"}
    rule = {"direction": "in", "protocol": "icmp", "source_ips": [ANY4] * 100, "description": "x" * 255}
    client.request("POST", f"/firewalls/{fw.id}/actions/set_rules", json={"rules": [rule]})


def test_at_most_50_rules(client: Client, recorder: SpecRecorder) -> None:
    fifty = [rule_in(str(1000 + i)) for i in range(50)]
    fw = client.firewalls.create(name="fw", rules=fifty).firewall
    assert len(fw.rules) == 50
    # "Rules are limited to 50 entries per Firewall": prose of the spec, not its schema (no maxItems)
    exc = api_error(client.firewalls.create, name="fw2", rules=[*fifty, rule_in("22")])
    assert exc.code == "invalid_input" and fields(exc) == {"rules"}
    with pytest.raises(APIException) as raised, recorder.invalid_requests():  # set_rules' schema: maxItems 50
        client.firewalls.set_rules(fw, [*fifty, rule_in("22")])
    assert raised.value.code == "invalid_input" and fields(raised.value) == {"rules"}
    assert len(client.firewalls.get_by_id(fw.id).rules) == 50


def test_set_rules_replaces_and_clears(client: Client) -> None:
    fw = client.firewalls.create(name="fw", rules=[rule_in("22")]).firewall
    actions = fw.set_rules([rule_out("443"), rule_in(None, protocol="icmp")])
    assert [(a.command, a.resources) for a in actions] == [
        ("set_firewall_rules", [{"id": fw.id, "type": "firewall"}])]
    wait(actions)
    assert [r.direction for r in client.firewalls.get_by_id(fw.id).rules] == ["out", "in"]
    wait(fw.set_rules([]))
    assert client.firewalls.get_by_id(fw.id).rules == []
    commands = [a.command for a in client.firewalls.get_actions(fw, sort=["id"])]
    assert commands == ["set_firewall_rules"] * 3
    assert {a.command for a in client.firewalls.actions.get_all()} == {"set_firewall_rules"}


def test_apply_and_remove_label_selector(client: Client) -> None:
    created = client.firewalls.create(name="fw", resources=[selector("role=web")])
    fw = created.firewall
    assert [(a.command, a.resources) for a in created.actions] == [
        ("apply_firewall", [{"id": fw.id, "type": "firewall"}])]
    wait(created.actions)
    assert selectors(fw) == ["role=web"]
    assert fw.applied_to[0].applied_to_resources is None  # nothing matches yet: empty list

    wait(fw.apply_to_resources([selector("env in (prod,staging),!legacy")]))
    fw = client.firewalls.get_by_id(fw.id)
    assert selectors(fw) == ["role=web", "env in (prod,staging),!legacy"]

    exc = api_error(fw.apply_to_resources, [selector("role=web")])
    assert exc.code == "firewall_already_applied"
    exc = api_error(fw.delete)
    assert exc.code == "resource_in_use"

    actions = fw.remove_from_resources([selector("role=web")])
    assert [a.command for a in actions] == ["remove_firewall"]
    wait(actions)
    assert selectors(client.firewalls.get_by_id(fw.id)) == ["env in (prod,staging),!legacy"]
    exc = api_error(fw.remove_from_resources, [selector("role=web")])
    assert exc.code == "firewall_already_removed"
    wait(fw.remove_from_resources([selector("env in (prod,staging),!legacy")]))
    assert client.firewalls.get_by_id(fw.id).applied_to == []
    assert fw.delete() is True


def test_apply_errors_without_servers(client: Client) -> None:
    fw = client.firewalls.create(name="fw").firewall
    exc = api_error(fw.apply_to_resources, [selector("role in (web")])
    assert exc.code == "invalid_input" and fields(exc) == {"apply_to[0].label_selector.selector"}
    ghost = FirewallResource(type="server", server=Server(id=424242))
    exc = api_error(fw.apply_to_resources, [ghost])
    assert exc.code == "firewall_resource_not_found"
    exc = api_error(fw.remove_from_resources, [ghost])
    assert exc.code == "firewall_resource_not_found"
    exc = api_error(client.firewalls.create, name="fw2", resources=[ghost])
    assert exc.code == "firewall_resource_not_found"
    exc = api_error(fw.apply_to_resources, [selector("a=b"), selector("a=b")])
    assert exc.code == "firewall_already_applied"
    assert client.firewalls.get_by_id(fw.id).applied_to == []
    assert [f.name for f in client.firewalls.get_all()] == ["fw"]


def test_unknown_firewall(client: Client) -> None:
    assert api_error(client.firewalls.get_by_id, 999).code == "not_found"
    ghost = BoundFirewall(client.firewalls, {"id": 999}, complete=False)
    assert api_error(ghost.set_rules, []).code == "not_found"
    assert api_error(ghost.apply_to_resources, [selector("a")]).code == "not_found"


# -- with servers ----------------------------------------------------------------------------
def make_server(client: Client, name: str, **kwargs: Any) -> BoundServer:
    created = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                    **kwargs)
    wait([created.action, *created.next_actions])
    return client.servers.get_by_id(created.server.id)


def on_server(server: BoundServer) -> FirewallResource:
    return FirewallResource(type="server", server=server)


def direct_ids(fw: BoundFirewall) -> list[int]:
    return [r.server.id for r in fw.applied_to or [] if r.type == "server"]


def selected_ids(fw: BoundFirewall, text: str) -> list[int]:
    for r in fw.applied_to or []:
        if r.type == "label_selector" and r.label_selector.selector == text:
            return sorted(x.server.id for x in r.applied_to_resources or [])
    raise AssertionError(f"selector {text} not applied")


def server_firewalls(client: Client, server: BoundServer) -> list[int]:
    return [f.firewall.id for f in client.servers.get_by_id(server.id).public_net.firewalls]


def test_apply_and_remove_by_server(client: Client) -> None:
    server = make_server(client, "web-1")
    fw = client.firewalls.create(name="fw", rules=[rule_in("22")]).firewall
    actions = fw.apply_to_resources([on_server(server)])
    assert [a.command for a in actions] == ["apply_firewall"]
    assert sorted((r["type"], r["id"]) for r in actions[0].resources) == [("firewall", fw.id), ("server", server.id)]
    wait(actions)
    assert direct_ids(client.firewalls.get_by_id(fw.id)) == [server.id]
    assert server_firewalls(client, server) == [fw.id]

    assert api_error(fw.apply_to_resources, [on_server(server)]).code == "firewall_already_applied"
    assert api_error(fw.delete).code == "resource_in_use"

    actions = fw.set_rules([rule_in("443")])
    assert sorted(a.command for a in actions) == ["apply_firewall", "set_firewall_rules"]
    assert any({"id": server.id, "type": "server"} in a.resources for a in actions)
    wait(actions)

    actions = fw.remove_from_resources([on_server(server)])
    assert [a.command for a in actions] == ["remove_firewall"]
    assert {"id": server.id, "type": "server"} in actions[0].resources
    wait(actions)
    assert client.firewalls.get_by_id(fw.id).applied_to == []
    assert server_firewalls(client, server) == []
    assert api_error(fw.remove_from_resources, [on_server(server)]).code == "firewall_already_removed"
    assert fw.delete() is True


def test_create_with_resources_and_server_create_with_firewalls(client: Client) -> None:
    one = make_server(client, "one")
    created = client.firewalls.create(name="fw", rules=[rule_in("22")], resources=[on_server(one)])
    assert [a.command for a in created.actions] == ["set_firewall_rules", "apply_firewall"]
    wait(created.actions)
    fw = created.firewall
    two = make_server(client, "two", firewalls=[fw])
    assert sorted(direct_ids(client.firewalls.get_by_id(fw.id))) == sorted([one.id, two.id])
    assert server_firewalls(client, two) == [fw.id]
    exc = api_error(client.firewalls.create, name="fw2", resources=[on_server(one), on_server(one)])
    assert exc.code == "server_already_added"


def test_label_selector_follows_the_servers(client: Client) -> None:
    fw = client.firewalls.create(name="fw", resources=[selector("role=web")]).firewall
    a = make_server(client, "a", labels={"role": "web"})
    make_server(client, "other", labels={"role": "db"})
    assert selected_ids(client.firewalls.get_by_id(fw.id), "role=web") == [a.id]
    b = make_server(client, "b", labels={"role": "web"})
    assert selected_ids(client.firewalls.get_by_id(fw.id), "role=web") == sorted([a.id, b.id])
    assert server_firewalls(client, b) == [fw.id]

    client.servers.update(a, labels={"role": "db"})
    assert selected_ids(client.firewalls.get_by_id(fw.id), "role=web") == [b.id]
    assert server_firewalls(client, a) == []

    # a selector's server cannot be removed by hand, even after a direct application
    exc = api_error(fw.remove_from_resources, [on_server(b)])
    assert exc.code == "firewall_managed_by_label_selector"
    wait(fw.apply_to_resources([on_server(b)]))
    exc = api_error(fw.remove_from_resources, [on_server(b)])
    assert exc.code == "firewall_managed_by_label_selector"

    b.delete().wait_until_finished()
    fw = client.firewalls.get_by_id(fw.id)
    assert direct_ids(fw) == [] and selected_ids(fw, "role=web") == []


def test_label_selector_apply_names_the_matching_servers(client: Client) -> None:
    a = make_server(client, "a", labels={"role": "web"})
    fw = client.firewalls.create(name="fw").firewall
    actions = fw.apply_to_resources([selector("role=web")])
    assert [a.command for a in actions] == ["apply_firewall"]
    assert {"id": a.id, "type": "server"} in actions[0].resources
    wait(actions)
    actions = fw.remove_from_resources([selector("role=web")])
    assert {"id": a.id, "type": "server"} in actions[0].resources
    wait(actions)
    assert server_firewalls(client, a) == []


def test_deleted_server_leaves_the_firewall(client: Client) -> None:
    server = make_server(client, "one")
    fw = client.firewalls.create(name="fw", resources=[on_server(server)]).firewall
    server.delete().wait_until_finished()
    assert client.firewalls.get_by_id(fw.id).applied_to == []
    assert fw.delete() is True


def test_server_apply_errors(client: Client) -> None:
    net = client.networks.create(name="net", ip_range="10.0.0.0/16",
                                 subnets=[NetworkSubnet(type="cloud", ip_range="10.0.1.0/24",
                                                        network_zone="eu-central")])
    hidden = make_server(client, "hidden", networks=[net],
                         public_net=ServerCreatePublicNetwork(enable_ipv4=False, enable_ipv6=False))
    fw = client.firewalls.create(name="fw").firewall
    assert api_error(fw.apply_to_resources, [on_server(hidden)]).code == "private_net_only_server"

    server = make_server(client, "web")
    for i in range(5):
        client.firewalls.create(name=f"fw{i}", resources=[on_server(server)])
    exc = api_error(fw.apply_to_resources, [on_server(server)])
    assert exc.code == "resource_limit_exceeded"
    assert exc.details == {"limits": [{"name": "firewalls_per_server"}]}
    client.servers.update(server, labels={"env": "prod"})
    exc = api_error(fw.apply_to_resources, [selector("env=prod")])  # the cap counts selectors too
    assert exc.code == "resource_limit_exceeded"
    assert client.firewalls.get_by_id(fw.id).applied_to == []
