"""Load balancers through the real hcloud-python client (every exchange checked against the spec)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hcloud import APIException, Client
from hcloud.actions import ActionFailedException
from hcloud.images import Image
from hcloud.load_balancer_types import LoadBalancerType
from hcloud.load_balancers import (
    BoundLoadBalancer,
    LoadBalancerAlgorithm,
    LoadBalancerHealthCheck,
    LoadBalancerHealthCheckHttp,
    LoadBalancerService,
    LoadBalancerServiceHttp,
    LoadBalancerTarget,
    LoadBalancerTargetIP,
    LoadBalancerTargetLabelSelector,
)
from hcloud.locations import Location
from hcloud.networks import BoundNetwork, NetworkSubnet
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer, Server

from tests.conftest import LocalCloud, SpecRecorder


def _delete(client: Client, lb: BoundLoadBalancer) -> None:
    """DELETE answers 200 with an action since Hetzner's change of 2026-10-05 (tests/spec.py, POST_SPEC_RESPONSES)."""
    result = client.load_balancers.delete(lb)
    assert result.action.command == "delete_load_balancer"
    result.action.wait_until_finished()


def _error(fn: Any, *args: Any, **kwargs: Any) -> APIException:
    with pytest.raises(APIException) as exc:
        fn(*args, **kwargs)
    return exc.value


def tcp_service(port: int = 443, destination: int | None = None) -> LoadBalancerService:
    """A TCP service with the full health check the spec requires in requests."""
    return LoadBalancerService(
        protocol="tcp", listen_port=port, destination_port=destination or port, proxyprotocol=False,
        health_check=LoadBalancerHealthCheck(protocol="tcp", port=destination or port, interval=15, timeout=10,
                                             retries=3))


def http_service(port: int = 80, destination: int = 8080, sticky: bool = False) -> LoadBalancerService:
    """An HTTP service with an HTTP health check, every field given as the spec requires."""
    return LoadBalancerService(
        protocol="http", listen_port=port, destination_port=destination, proxyprotocol=False,
        http=LoadBalancerServiceHttp(cookie_name="HCLBSTICKY", cookie_lifetime=300, timeout_idle=50,
                                     sticky_sessions=sticky),
        health_check=LoadBalancerHealthCheck(
            protocol="http", port=destination, interval=10, timeout=5, retries=3,
            http=LoadBalancerHealthCheckHttp(domain="example.org", path="/healthz", response="ok",
                                             status_codes=["200", "3??"], tls=False)))


def _lb(client: Client, name: str = "lb", lb_type: str = "lb11", wait: bool = True,
        **kwargs: Any) -> BoundLoadBalancer:
    kwargs.setdefault("location", Location(name="fsn1"))
    created = client.load_balancers.create(name=name, load_balancer_type=LoadBalancerType(name=lb_type),
                                           **kwargs)
    if wait:
        created.action.wait_until_finished()
    return client.load_balancers.get_by_id(created.load_balancer.id)


def _network(client: Client, name: str = "net", ip_range: str = "10.0.0.0/16",
             subnet: str = "10.0.1.0/24") -> BoundNetwork:
    return client.networks.create(name=name, ip_range=ip_range, subnets=[
        NetworkSubnet(type="cloud", ip_range=subnet, network_zone="eu-central")])


def _server(client: Client, name: str, labels: dict[str, str] | None = None,
            networks: list[BoundNetwork] | None = None) -> BoundServer:
    created = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                    location=Location(name="fsn1"), labels=labels or {},
                                    networks=networks or [])
    created.action.wait_until_finished()
    for action in created.next_actions:
        action.wait_until_finished()
    return client.servers.get_by_id(created.server.id)


# -- without servers --------------------------------------------------------------------------
def test_create_with_services_lifecycle(client: Client, recorder: SpecRecorder) -> None:
    created = client.load_balancers.create(
        name="web", load_balancer_type=LoadBalancerType(name="lb11"), location=Location(name="fsn1"),
        algorithm=LoadBalancerAlgorithm(type="least_connections"), services=[http_service(), tcp_service()],
        labels={"app": "web"})
    assert created.action.command == "create_load_balancer"
    created.action.wait_until_finished()
    lb = client.load_balancers.get_by_id(created.load_balancer.id)
    assert lb.name == "web"
    assert lb.location.name == "fsn1"
    assert lb.load_balancer_type.name == "lb11"
    assert lb.algorithm.type == "least_connections"
    assert lb.public_net.enabled is True
    assert ipaddress.ip_address(lb.public_net.ipv4.ip) in ipaddress.ip_network("198.51.100.0/24")
    assert lb.public_net.ipv6.ip
    assert lb.private_net == []
    assert lb.targets == []
    assert lb.included_traffic > 0
    assert lb.labels == {"app": "web"}
    http, tcp = lb.services
    assert (http.protocol, http.listen_port, http.destination_port) == ("http", 80, 8080)
    assert http.http.cookie_name == "HCLBSTICKY" and http.http.sticky_sessions is False
    assert http.http.certificates == [] and http.http.redirect_http is False
    assert http.health_check.protocol == "http"
    assert http.health_check.http.path == "/healthz"
    assert http.health_check.http.status_codes == ["200", "3??"]
    assert (tcp.protocol, tcp.listen_port, tcp.health_check.protocol) == ("tcp", 443, "tcp")

    updated = client.load_balancers.update(lb, name="web2", labels={"app": "web2"})
    assert (updated.name, updated.labels) == ("web2", {"app": "web2"})
    assert client.load_balancers.get_by_name("web2").id == lb.id
    assert [x.id for x in client.load_balancers.get_all(label_selector="app=web2")] == [lb.id]
    _delete(client, lb)
    assert _error(client.load_balancers.get_by_id, lb.id).code == "not_found"
    assert client.load_balancers.get_all() == []


def test_an_http_check_without_a_domain_is_created_as_hcloud_python_sends_it(client: Client,
                                                                             recorder: SpecRecorder) -> None:
    """hcloud-python leaves domain out unless it is set (so does the hcloud CLI); the real API takes
    that (tests/spec.py REAL_API_ACCEPTS): no domain means no Host header. A path is still required."""
    service = http_service()
    assert service.health_check is not None and service.health_check.http is not None
    service.health_check.http.domain = None
    lb = _lb(client, services=[service])
    assert lb.services[0].health_check.http.domain is None
    assert lb.services[0].health_check.http.path == "/healthz"
    service.health_check.http.path = None
    with recorder.invalid_requests():
        refused = _error(_lb, client, name="no-path", services=[service])
    assert (refused.code, refused.details["fields"][0]["name"]) == (
        "invalid_input", "services[0].health_check.http.path")


def test_public_ips_share_the_servers_pools(client: Client, recorder: SpecRecorder) -> None:
    """From the servers' pools, top down (not 203.0.113.0/24: a real mirror may live there)."""
    a = _lb(client, "a")
    b = _lb(client, "b", location=None, network_zone="eu-central")
    assert a.public_net.ipv4.ip == "198.51.100.254"
    assert b.public_net.ipv4.ip == "198.51.100.253"
    assert a.public_net.ipv6.ip != b.public_net.ipv6.ip
    assert b.location.network_zone == "eu-central"
    # one set of used addresses: a primary IP never gets a load balancer's, nor the reverse
    pip = client.primary_ips.create(type="ipv4", name="p", location=Location(name="fsn1")).primary_ip
    assert pip.ip not in (a.public_net.ipv4.ip, b.public_net.ipv4.ip)
    _delete(client, a)
    c = _lb(client, "c")  # a freed address is handed out again
    assert c.public_net.ipv4.ip == "198.51.100.254" and c.public_net.ipv4.ip != pip.ip


def test_create_validation(client: Client) -> None:
    lb_type = LoadBalancerType(name="lb11")
    assert _error(client.load_balancers.create, name="x", load_balancer_type=LoadBalancerType(name="lb99"),
                  location=Location(name="fsn1")).code == "invalid_input"
    assert _error(client.load_balancers.create, name="x", load_balancer_type=lb_type).code == "invalid_input"
    assert _error(client.load_balancers.create, name="x", load_balancer_type=lb_type,
                  location=Location(name="fsn1"), network_zone="eu-central").code == "invalid_input"
    assert _error(client.load_balancers.create, name="x", load_balancer_type=lb_type,
                  location=Location(name="fsn1"), public_interface=False).code == \
        "load_balancer_not_attached_to_network"
    # two services on one port
    exc = _error(client.load_balancers.create, name="x", load_balancer_type=lb_type,
                 location=Location(name="fsn1"), services=[tcp_service(443), tcp_service(443, 8443)])
    assert exc.code == "source_port_already_used"
    _lb(client, "dup")
    assert _error(client.load_balancers.create, name="dup", load_balancer_type=lb_type,
                  location=Location(name="fsn1")).code == "uniqueness_error"


def test_services_add_update_delete(client: Client) -> None:
    lb = _lb(client)
    lb.add_service(tcp_service(443)).wait_until_finished()
    assert _error(lb.add_service, tcp_service(443, 8443)).code == "source_port_already_used"
    update = LoadBalancerService(listen_port=443, destination_port=8443,
                                 health_check=LoadBalancerHealthCheck(protocol="tcp", port=8443, interval=5,
                                                                      timeout=3, retries=2))
    lb.update_service(update).wait_until_finished()
    svc = client.load_balancers.get_by_id(lb.id).services[0]
    assert (svc.destination_port, svc.health_check.port, svc.health_check.interval) == (8443, 8443, 5)
    assert svc.proxyprotocol is False
    # switch to http: the http block gets its defaults
    lb.update_service(LoadBalancerService(listen_port=443, protocol="http")).wait_until_finished()
    svc = client.load_balancers.get_by_id(lb.id).services[0]
    assert svc.protocol == "http" and svc.http.cookie_lifetime == 300
    assert _error(lb.update_service, LoadBalancerService(listen_port=9999, destination_port=1)).code == \
        "invalid_input"
    lb.delete_service(LoadBalancerService(listen_port=443)).wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).services == []
    assert _error(lb.delete_service, LoadBalancerService(listen_port=443)).code == "invalid_input"


def test_service_validation(client: Client, recorder: SpecRecorder) -> None:
    lb = _lb(client)
    bad_hc = tcp_service(443)
    assert bad_hc.health_check is not None
    bad_hc.health_check.interval = 100
    with recorder.invalid_requests():  # listen_port and interval out of the spec's ranges
        exc = _error(client.request, "POST", f"/load_balancers/{lb.id}/actions/add_service",
                     json={**bad_hc.to_payload(), "listen_port": 70000})
    assert exc.code == "invalid_input"
    assert {f["name"] for f in exc.details["fields"]} == {"listen_port", "health_check.interval"}
    tcp_with_http = tcp_service(22).to_payload()
    tcp_with_http["http"] = {"sticky_sessions": True}
    exc = _error(client.request, "POST", f"/load_balancers/{lb.id}/actions/add_service", json=tcp_with_http)
    assert exc.code == "invalid_input"


def test_max_services_and_change_type(client: Client) -> None:
    lb = _lb(client, lb_type="lb21")
    for port in range(8000, 8006):  # six services: more than lb11 allows
        lb.add_service(tcp_service(port)).wait_until_finished()
    exc = _error(lb.change_type, LoadBalancerType(name="lb11"))
    assert exc.code == "invalid_load_balancer_type"
    lb.delete_service(LoadBalancerService(listen_port=8005)).wait_until_finished()
    action = lb.change_type(LoadBalancerType(name="lb11"))
    assert action.command == "change_load_balancer_type"
    action.wait_until_finished()
    lb = client.load_balancers.get_by_id(lb.id)
    assert lb.load_balancer_type.name == "lb11"
    exc = _error(lb.add_service, tcp_service(9000))
    assert exc.code == "resource_limit_exceeded"
    lb.change_type(LoadBalancerType(name="lb21")).wait_until_finished()
    lb.add_service(tcp_service(9000)).wait_until_finished()
    assert len(client.load_balancers.get_by_id(lb.id).services) == 6


def test_algorithm_dns_ptr_protection(client: Client, recorder: SpecRecorder) -> None:
    lb = _lb(client)
    lb.change_algorithm(LoadBalancerAlgorithm(type="least_connections")).wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).algorithm.type == "least_connections"
    with recorder.invalid_requests():  # not one of the spec's algorithms
        exc = _error(client.request, "POST", f"/load_balancers/{lb.id}/actions/change_algorithm",
                     json={"type": "random"})
    assert exc.code == "invalid_input"

    lb.change_dns_ptr(ip=lb.public_net.ipv4.ip, dns_ptr="lb.example.org").wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).public_net.ipv4.dns_ptr == "lb.example.org"
    lb.change_dns_ptr(ip=lb.public_net.ipv6.ip, dns_ptr="lb6.example.org").wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).public_net.ipv6.dns_ptr == "lb6.example.org"
    assert _error(lb.change_dns_ptr, ip="192.0.2.1", dns_ptr="x.example.org").code == "invalid_input"
    lb.change_dns_ptr(ip=lb.public_net.ipv4.ip, dns_ptr=None).wait_until_finished()  # null: back to default
    assert client.load_balancers.get_by_id(lb.id).public_net.ipv4.dns_ptr == \
        f"static.{lb.public_net.ipv4.ip}.clients.your-server.de"

    action = lb.change_protection(delete=True)
    assert action.status == "success"
    assert client.load_balancers.get_by_id(lb.id).protection == {"delete": True}
    assert _error(client.load_balancers.delete, lb).code == "protected"
    lb.change_protection(delete=False)
    _delete(client, lb)


def test_ip_targets(client: Client) -> None:
    lb = _lb(client, services=[tcp_service(80)])
    target = LoadBalancerTarget(type="ip", ip=LoadBalancerTargetIP(ip="192.0.2.10"))
    lb.add_target(target).wait_until_finished()
    assert _error(lb.add_target, target).code == "target_already_defined"
    other = _lb(client, "other")
    own = LoadBalancerTarget(type="ip", ip=LoadBalancerTargetIP(ip=other.public_net.ipv4.ip))
    assert _error(lb.add_target, own).code == "cloud_resource_ip_not_allowed"
    private = LoadBalancerTarget(type="ip", ip=LoadBalancerTargetIP(ip="10.0.0.5"))
    assert _error(lb.add_target, private).code == "load_balancer_not_attached_to_network"
    (got,) = client.load_balancers.get_by_id(lb.id).targets
    assert got.type == "ip" and got.ip.ip == "192.0.2.10"
    assert [(h.listen_port, h.status) for h in got.health_status] == [(80, "unknown")]
    lb.remove_target(target).wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).targets == []
    assert _error(lb.remove_target, target).code == "invalid_input"


def test_label_selector_target_without_servers(client: Client) -> None:
    lb = _lb(client, services=[tcp_service(80)])
    target = LoadBalancerTarget(type="label_selector", use_private_ip=False,
                                label_selector=LoadBalancerTargetLabelSelector(selector="role=web"))
    lb.add_target(target).wait_until_finished()
    (got,) = client.load_balancers.get_by_id(lb.id).targets
    assert got.label_selector.selector == "role=web" and got.targets == []
    assert _error(lb.add_target, target).code == "target_already_defined"
    bad = LoadBalancerTarget(type="label_selector", use_private_ip=False,
                             label_selector=LoadBalancerTargetLabelSelector(selector="role in ("))
    assert _error(lb.add_target, bad).code == "invalid_input"
    private = LoadBalancerTarget(type="label_selector", use_private_ip=True,
                                 label_selector=LoadBalancerTargetLabelSelector(selector="role=db"))
    assert _error(lb.add_target, private).code == "load_balancer_not_attached_to_network"


def test_attach_detach_network_and_public_interface(client: Client) -> None:
    network = _network(client)
    lb = _lb(client)
    assert _error(lb.disable_public_interface).code == "load_balancer_not_attached_to_network"
    action = lb.attach_to_network(network, ip="10.0.1.5")
    assert action.command == "attach_to_network"
    action.wait_until_finished()
    lb = client.load_balancers.get_by_id(lb.id)
    assert [(p.network.id, p.ip) for p in lb.private_net] == [(network.id, "10.0.1.5")]
    assert client.request("GET", f"/networks/{network.id}")["network"]["load_balancers"] == [lb.id]
    assert _error(lb.attach_to_network, network).code == "load_balancer_already_attached"

    lb.disable_public_interface().wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).public_net.enabled is False
    public_target = LoadBalancerTarget(type="ip", ip=LoadBalancerTargetIP(ip="192.0.2.7"))
    lb.add_target(public_target).wait_until_finished()  # IP targets do not depend on the public interface
    lb.enable_public_interface().wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).public_net.enabled is True

    lb.detach_from_network(network).wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).private_net == []
    assert _error(lb.detach_from_network, network).code == "load_balancer_not_attached_to_network"


def test_create_in_network_without_public_interface(client: Client) -> None:
    network = _network(client)
    a = _lb(client, "a", network=network, public_interface=False)
    assert a.public_net.enabled is False
    assert [p.network.id for p in a.private_net] == [network.id]
    assert ipaddress.ip_address(a.private_net[0].ip) in ipaddress.ip_network("10.0.1.0/24")
    assert client.request("GET", f"/networks/{network.id}")["network"]["load_balancers"] == [a.id]
    # without public interface and with its only network gone it would be unreachable
    assert _error(a.detach_from_network, network).code == "load_balancer_public_interface_disabled"


def test_taken_private_ip_is_refused(client: Client) -> None:
    network = _network(client)
    a = _lb(client, "a", network=network)
    b = _lb(client, "b")
    assert _error(b.attach_to_network, network, ip=a.private_net[0].ip).code == "ip_not_available"
    b.attach_to_network(network, ip_range="10.0.1.128/25").wait_until_finished()
    b = client.load_balancers.get_by_id(b.id)
    assert ipaddress.ip_address(b.private_net[0].ip) in ipaddress.ip_network("10.0.1.128/25")


def test_failed_action_restores(client: Client, localcloud: Any) -> None:
    lb = _lb(client)
    localcloud.side("PUT", "faults", {"actions": {"add_service": 1.0}})
    with pytest.raises(ActionFailedException):
        lb.add_service(tcp_service(443)).wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).services == []


def test_locked_while_creating_and_actions_listing(client: Client, localcloud: LocalCloud) -> None:
    localcloud.side("PUT", "config", {"time_scale": 20})  # actions take ~1 s: the lock is observable
    created = client.load_balancers.create(name="busy", load_balancer_type=LoadBalancerType(name="lb11"),
                                           location=Location(name="fsn1"))
    assert _error(created.load_balancer.add_service, tcp_service()).code == "locked"
    created.action.wait_until_finished()
    lb = client.load_balancers.get_by_id(created.load_balancer.id)
    lb.add_service(tcp_service()).wait_until_finished()
    assert [a.command for a in lb.get_actions(sort=["id"])] == ["create_load_balancer", "add_service"]
    assert {a.command for a in client.load_balancers.actions.get_all()} >= {"create_load_balancer"}


def test_project_limit(client: Client, localcloud: Any) -> None:
    localcloud.side("PUT", "config", {"limits": {"load_balancers": 1}})
    _lb(client, "one")
    exc = _error(client.load_balancers.create, name="two", load_balancer_type=LoadBalancerType(name="lb11"),
                 location=Location(name="fsn1"))
    assert exc.code == "resource_limit_exceeded"


# -- with servers ---------------------------------------------------------------------------
def test_server_targets_and_health(client: Client) -> None:
    web = _server(client, "web", {"role": "web"})
    lb = _lb(client, services=[http_service(80, 8080), tcp_service(443)])
    target = LoadBalancerTarget(type="server", server=Server(id=web.id), use_private_ip=False)
    lb.add_target(target).wait_until_finished()
    assert _error(lb.add_target, target).code == "target_already_defined"
    (got,) = client.load_balancers.get_by_id(lb.id).targets
    assert got.type == "server" and got.server.id == web.id and got.use_private_ip is False
    assert [(h.listen_port, h.status) for h in got.health_status] == [(80, "healthy"), (443, "healthy")]

    web.power_off().wait_until_finished()
    (got,) = client.load_balancers.get_by_id(lb.id).targets
    assert {h.status for h in got.health_status} == {"unhealthy"}

    lb.remove_target(target).wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).targets == []
    missing = LoadBalancerTarget(type="server", server=Server(id=999999), use_private_ip=False)
    assert _error(lb.add_target, missing).code == "invalid_input"


def test_private_targets_need_a_shared_network(client: Client) -> None:
    network = _network(client)
    other = _network(client, "other", "10.1.0.0/16", "10.1.1.0/24")
    inside = _server(client, "inside", {"role": "app"}, networks=[network])
    outside = _server(client, "outside", {"role": "app"}, networks=[other])
    lb = _lb(client, services=[tcp_service(80)])
    private = LoadBalancerTarget(type="server", server=Server(id=inside.id), use_private_ip=True)
    assert _error(lb.add_target, private).code == "load_balancer_not_attached_to_network"
    lb.attach_to_network(network).wait_until_finished()
    lb.add_target(private).wait_until_finished()
    away = LoadBalancerTarget(type="server", server=Server(id=outside.id), use_private_ip=True)
    assert _error(lb.add_target, away).code == "resolve_cloud_private_targets_error"

    selector = LoadBalancerTarget(type="label_selector", use_private_ip=True,
                                  label_selector=LoadBalancerTargetLabelSelector(selector="role=app"))
    lb.add_target(selector).wait_until_finished()
    lb = client.load_balancers.get_by_id(lb.id)
    server_target, selector_target = lb.targets
    assert server_target.server.id == inside.id and server_target.use_private_ip is True
    # only the server on the shared network is resolved for a private selector target
    assert [t.server.id for t in selector_target.targets] == [inside.id]
    assert [(h.listen_port, h.status) for h in selector_target.targets[0].health_status] == [(80, "healthy")]
    raw = client.request("GET", f"/load_balancers/{lb.id}")["load_balancer"]
    assert raw["targets"][0]["server"]["ip"] == inside.private_net[0].ip

    # every target uses private IPs now, so the public interface may go
    lb.disable_public_interface().wait_until_finished()
    public = LoadBalancerTarget(type="label_selector", use_private_ip=False,
                                label_selector=LoadBalancerTargetLabelSelector(selector="role=x"))
    assert _error(lb.add_target, public).code == "load_balancer_public_interface_disabled"


def test_label_selector_expands_at_render_time(client: Client) -> None:
    lb = _lb(client, services=[tcp_service(80)])
    lb.add_target(LoadBalancerTarget(type="label_selector", use_private_ip=False,
                                     label_selector=LoadBalancerTargetLabelSelector(selector="role=web")))
    a = _server(client, "a", {"role": "web"})
    _server(client, "b", {"role": "db"})
    (got,) = client.load_balancers.get_by_id(lb.id).targets
    assert [t.server.id for t in got.targets] == [a.id]
    raw = client.request("GET", f"/load_balancers/{lb.id}")["load_balancer"]
    assert raw["targets"][0]["targets"][0]["server"]["ip"] == a.public_net.ipv4.ip
    client.servers.update(a, labels={"role": "other"})
    assert client.load_balancers.get_by_id(lb.id).targets[0].targets == []


def test_disable_public_interface_with_public_targets(client: Client) -> None:
    network = _network(client)
    web = _server(client, "web")
    lb = _lb(client, network=network)
    lb.add_target(LoadBalancerTarget(type="server", server=Server(id=web.id),
                                     use_private_ip=False)).wait_until_finished()
    assert _error(lb.disable_public_interface).code == "targets_without_use_private_ip"


def test_server_deleted_drops_target(client: Client) -> None:
    web = _server(client, "web")
    lb = _lb(client)
    lb.add_target(LoadBalancerTarget(type="server", server=Server(id=web.id),
                                     use_private_ip=False)).wait_until_finished()
    client.servers.delete(web).wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).targets == []


def test_change_type_counts_targets(client: Client) -> None:
    servers = [_server(client, f"s{i}", {"role": "web"}) for i in range(3)]
    lb = _lb(client)
    for server in servers:
        lb.add_target(LoadBalancerTarget(type="server", server=Server(id=server.id),
                                         use_private_ip=False)).wait_until_finished()
    assert len(client.load_balancers.get_by_id(lb.id).targets) == 3
    lb.change_type(LoadBalancerType(name="lb21")).wait_until_finished()
    assert client.load_balancers.get_by_id(lb.id).load_balancer_type.name == "lb21"
