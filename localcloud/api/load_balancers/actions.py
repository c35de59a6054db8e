"""The load balancer actions: services, targets, networks, type, algorithm, DNS, public
interface, protection."""

from __future__ import annotations

import ipaddress

from localcloud import errors
from localcloud.api.common import change_protection, register_action_routes
from localcloud.api.load_balancers.bodies import (
    check_new_service,
    check_target,
    read_port,
    read_service,
    read_target,
    same_target,
)
from localcloud.api.load_balancers.document import (
    ALGORITHMS,
    KIND,
    default_dns_ptr,
    lb_location,
    lb_networks,
    lb_of,
    locked_lb_of,
    network_of,
    pick_private_ip,
)
from localcloud.api.load_balancers.effects import machines_follow, start_change
from localcloud.router import Reply, Request, route
from localcloud.validate import Body


@route("POST", "/load_balancers/{id}/actions/add_service")
def add_service(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    svc, body = read_service(cloud, req.body)
    body.check()
    cloud.ensure_unlocked(KIND, lb["id"])
    check_new_service(cloud, lb, svc)
    action = start_change(cloud, lb, "add_service", ("services",))
    lb["services"].append(svc)
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/update_service")
def update_service(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    probe = Body(req.body)
    port = read_port(probe, "listen_port", required=True)
    probe.check()
    index = next((i for i, s in enumerate(lb["services"]) if s["listen_port"] == port), None)
    if index is None:
        raise errors.invalid_field("listen_port", f"no service listens on port {port}")
    svc, body = read_service(cloud, req.body, current=lb["services"][index])
    body.check()
    cloud.ensure_unlocked(KIND, lb["id"])
    action = start_change(cloud, lb, "update_service", ("services",))
    lb["services"][index] = svc
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/delete_service")
def delete_service(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    body = Body(req.body)
    port = read_port(body, "listen_port", required=True)
    body.check()
    if not any(s["listen_port"] == port for s in lb["services"]):
        raise errors.invalid_field("listen_port", f"no service listens on port {port}")
    cloud.ensure_unlocked(KIND, lb["id"])
    action = start_change(cloud, lb, "delete_service", ("services",))
    lb["services"] = [s for s in lb["services"] if s["listen_port"] != port]
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/add_target")
def add_target(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    target, body = read_target(req.body)
    body.check()
    cloud.ensure_unlocked(KIND, lb["id"])
    check_target(cloud, lb, target, "")
    action = start_change(cloud, lb, "add_target", ("targets",))
    lb["targets"].append(target)
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/remove_target")
def remove_target(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    target, body = read_target(req.body, removing=True)
    body.check()
    kept = [t for t in lb["targets"] if not same_target(t, target)]
    if len(kept) == len(lb["targets"]):
        raise errors.invalid_field("type", "no such target on this load balancer")
    cloud.ensure_unlocked(KIND, lb["id"])
    action = start_change(cloud, lb, "remove_target", ("targets",))
    lb["targets"] = kept
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/attach_to_network")
def attach_to_network(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    body = Body(req.body)
    network_id = body.integer("network", required=True)
    ip = body.ip("ip")
    ip_range = body.cidr("ip_range")
    body.check()
    network = network_of(cloud, network_id)
    if network_id in lb_networks(cloud, lb):
        raise errors.ApiError("load_balancer_already_attached",
                              f"load balancer {lb['id']} is already attached to network {network_id}")
    cloud.ensure_unlocked(KIND, lb["id"])
    address = pick_private_ip(cloud, network, lb_location(cloud, lb)["network_zone"], ip, ip_range)
    action = start_change(cloud, lb, "attach_to_network", ("private_net",), extra=[("network", network_id)],
                     duration_key="load_balancer_attach_to_network")
    lb["private_net"] = [e for e in lb["private_net"] if e["network"] != network_id]
    lb["private_net"].append({"network": network_id, "ip": address})
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/detach_from_network")
def detach_from_network(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    body = Body(req.body)
    network_id = body.integer("network", required=True)
    body.check()
    network_of(cloud, network_id)
    if network_id not in lb_networks(cloud, lb):
        raise errors.ApiError("load_balancer_not_attached_to_network",
                              f"load balancer {lb['id']} is not attached to network {network_id}")
    if not lb["public_net"]["enabled"] and len(lb_networks(cloud, lb)) == 1:
        raise errors.ApiError("load_balancer_public_interface_disabled",
                              "the public interface is disabled: the last network cannot be detached")
    cloud.ensure_unlocked(KIND, lb["id"])
    action = start_change(cloud, lb, "detach_from_network", ("private_net",), extra=[("network", network_id)])
    lb["private_net"] = [e for e in lb["private_net"] if e["network"] != network_id]
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/change_type")
def change_type(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    body = Body(req.body)
    ref = body.id_or_name("load_balancer_type", required=True)
    body.check()
    new_type = cloud.products.load_balancer_type(ref)
    if new_type is None:
        raise errors.invalid_field("load_balancer_type", f"load balancer type {ref} not found")
    if len(lb["services"]) > new_type["max_services"] or len(lb["targets"]) > new_type["max_targets"]:
        raise errors.ApiError("invalid_load_balancer_type",
                              f"load balancer type {new_type['name']} allows {new_type['max_services']} services "
                              f"and {new_type['max_targets']} targets; this load balancer has "
                              f"{len(lb['services'])} and {len(lb['targets'])}")
    cloud.ensure_unlocked(KIND, lb["id"])
    action = start_change(cloud, lb, "change_load_balancer_type", ("_type",))
    lb["_type"] = new_type["id"]
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/change_algorithm")
def change_algorithm(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    body = Body(req.body)
    algorithm = body.string("type", required=True, choices=ALGORITHMS)
    body.check()
    cloud.ensure_unlocked(KIND, lb["id"])
    action = start_change(cloud, lb, "change_algorithm", ("algorithm",))
    lb["algorithm"] = {"type": algorithm}
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/change_dns_ptr")
def change_dns_ptr(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    body = Body(req.body)
    ip = body.ip("ip", required=True)
    if "dns_ptr" in body.data and body.data["dns_ptr"] is not None:
        body.string("dns_ptr", max_len=255)
    body.check()
    family = next((f for f in ("ipv4", "ipv6")
                   if ipaddress.ip_address(lb["public_net"][f]["ip"]) == ipaddress.ip_address(ip)), None)
    if family is None:
        raise errors.invalid_field("ip", f"{ip} is not an IP address of load balancer {lb['id']}")
    cloud.ensure_unlocked(KIND, lb["id"])
    action = start_change(cloud, lb, "change_dns_ptr", ("public_net",))
    dns_ptr = body.data.get("dns_ptr")
    lb["public_net"][family]["dns_ptr"] = dns_ptr if dns_ptr is not None else default_dns_ptr(
        lb["public_net"][family]["ip"])
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/enable_public_interface")
def enable_public_interface(req: Request) -> Reply:
    cloud = req.cloud
    lb = locked_lb_of(req)
    action = start_change(cloud, lb, "enable_public_interface", ("public_net",))
    lb["public_net"]["enabled"] = True
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/disable_public_interface")
def disable_public_interface(req: Request) -> Reply:
    cloud = req.cloud
    lb = locked_lb_of(req)
    if not lb_networks(cloud, lb):
        raise errors.ApiError("load_balancer_not_attached_to_network",
                              "a load balancer must be attached to a network to disable its public interface")
    if any(t["type"] in ("server", "label_selector") and not t.get("use_private_ip") for t in lb["targets"]):
        raise errors.ApiError("targets_without_use_private_ip",
                              "the load balancer has targets that use public IPs")
    action = start_change(cloud, lb, "disable_public_interface", ("public_net",))
    lb["public_net"]["enabled"] = False
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/change_protection")
def change_load_balancer_protection(req: Request) -> Reply:
    return change_protection(req, KIND, ("delete",))


register_action_routes("load_balancers", KIND)
