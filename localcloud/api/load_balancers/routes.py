"""Routes of the load balancer collection and of one load balancer (actions: ``actions.py``)."""

from __future__ import annotations

from localcloud import errors
from localcloud.api.load_balancers.bodies import (
    CreateLoadBalancer,
    check_new_service,
    check_target,
    read_create,
    read_name,
)
from localcloud.api.load_balancers.document import (
    KIND,
    allocate_public,
    default_dns_ptr,
    lb_of,
    network_of,
    pick_private_ip,
    render,
)
from localcloud.api.load_balancers.effects import machines_follow
from localcloud.api.machine_specs import tie
from localcloud.cloud import Cloud, now_iso
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.store import Doc
from localcloud.validate import Body


@route("GET", "/load_balancers")
def list_load_balancers(req: Request) -> Reply:
    items = sort_items(req, filter_common(req, req.cloud.store.all(KIND)), ("id", "name", "created"))
    return page(req, "load_balancers", [render(req.cloud, lb) for lb in items])


@route("POST", "/load_balancers")
def create_load_balancer(req: Request) -> Reply:
    """In named steps: read the body (types and location resolved), check the project's limits,
    pick the addresses, build the document with its services and targets, start the action."""
    cloud = req.cloud
    body = read_create(cloud, req.body)
    cloud.ensure_limit("load_balancers", KIND)
    cloud.ensure_unique_name(KIND, body.name)
    private_net = _private_net(cloud, body)
    lb = _build(cloud, body, private_net)
    cloud.store.put(KIND, lb)
    action = cloud.engine.start("create_load_balancer", [(KIND, lb["id"])], finish="load_balancer.changed",
                                params={"load_balancer": lb["id"], "before": {}})
    machines_follow(cloud, lb, [action])
    return Reply(201, {"load_balancer": render(cloud, lb), "action": cloud.action(action)})


def _private_net(cloud: Cloud, body: CreateLoadBalancer) -> list[Doc]:
    """The attachment to ``network`` (an address in the location's zone), if asked for; a load
    balancer without public interface needs one."""
    if body.network_id is not None:
        network = network_of(cloud, body.network_id)
        return [{"network": body.network_id,
                 "ip": pick_private_ip(cloud, network, body.location["network_zone"])}]
    if not body.public_interface:
        raise errors.ApiError("load_balancer_not_attached_to_network",
                              "a load balancer without public interface must be attached to a network")
    return []


def _build(cloud: Cloud, body: CreateLoadBalancer, private_net: list[Doc]) -> Doc:
    """The document, its public addresses allocated, its services and targets checked in order."""
    v4, v6 = allocate_public(cloud)
    lb: Doc = {
        "id": cloud.store.next_id(KIND), "name": body.name, "_location": body.location["name"],
        "_type": body.lb_type["id"],
        "public_net": {"enabled": bool(body.public_interface),
                       "ipv4": {"ip": v4, "dns_ptr": default_dns_ptr(v4)},
                       "ipv6": {"ip": v6, "dns_ptr": default_dns_ptr(v6)}},
        "private_net": private_net, "protection": {"delete": False}, "labels": body.labels or {},
        "created": now_iso(), "services": [], "targets": [], "algorithm": {"type": body.algorithm},
        "outgoing_traffic": None, "ingoing_traffic": None,
    }
    for svc in body.services:
        check_new_service(cloud, lb, svc)
        lb["services"].append(svc)
    for i, target in enumerate(body.targets):
        check_target(cloud, lb, target, f"targets[{i}]")
        lb["targets"].append(target)
    return lb


@route("GET", "/load_balancers/{id}")
def get_load_balancer(req: Request) -> Reply:
    return Reply(200, {"load_balancer": render(req.cloud, lb_of(req))})


@route("PUT", "/load_balancers/{id}")
def update_load_balancer(req: Request) -> Reply:
    cloud = req.cloud
    lb = lb_of(req)
    body = Body(req.body)
    name = read_name(body, required=False)
    labels = body.labels()
    body.check()
    if name is not None and name != lb["name"]:
        cloud.ensure_unique_name(KIND, name, except_id=lb["id"])
        lb["name"] = name
    if labels is not None:
        lb["labels"] = labels
    cloud.store.put(KIND, lb)
    return Reply(200, {"load_balancer": render(cloud, lb)})


@route("DELETE", "/load_balancers/{id}")
def delete_load_balancer(req: Request) -> Reply:
    """200 with a ``delete_load_balancer`` action, not the spec copy's 204.

    Hetzner's changelog of 2026-10-05 ("Deleting a Load Balancer now returns an Action")
    postdates the spec copy (2026-07-08); hcloud-python 2.27 reads ``response["action"]``
    and fails on an empty 204. The load balancer is gone at once; the action records it.
    """
    cloud = req.cloud
    lb = lb_of(req)
    cloud.ensure_deletable(KIND, lb)
    cloud.ensure_unlocked(KIND, lb["id"])
    cloud.store.delete(KIND, lb["id"])
    action = cloud.engine.start("delete_load_balancer", [(KIND, lb["id"])])
    tie(cloud, [action], cloud.machines.delete_load_balancer(int(lb["id"])))
    return cloud.action_reply(action, status=200)


