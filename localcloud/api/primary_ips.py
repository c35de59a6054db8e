"""Primary IPs: the public IPv4 address and IPv6 /64 of a server, as their own resources.

A server's public addresses are primary IP documents (``assignee_id`` = the server); the
server keeps their ids in ``public_net._ipv4``/``_ipv6`` and both sides are changed together.
Addresses come from documentation ranges (RFC 5737 / RFC 3849) so that they can never
clash with a real address on this machine, even once real machines get them on a bridge.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from localcloud import errors, events
from localcloud.api.common import change_protection, public, register_action_routes, update_name_labels
from localcloud.api.machine_specs import public_addresses
from localcloud.cloud import Cloud, now_iso
from localcloud.config import PUBLIC_IPV4_POOLS, PUBLIC_IPV6_POOL
from localcloud.events import subscribe
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.store import Doc
from localcloud.validate import Body

KIND = "primary_ip"


# -- allocation ---------------------------------------------------------------------------
def _taken(cloud: Cloud) -> set[str]:
    """Public addresses in use: primary IPs and load balancers' (they share the pools)."""
    taken = {str(p["ip"]) for p in cloud.store.all(KIND)}
    taken |= {str(lb["public_net"]["ipv4"]["ip"]) for lb in cloud.store.all("load_balancer")}
    return taken


def allocate_ipv4(cloud: Cloud, *, top_down: bool = False) -> str:
    """The lowest free public IPv4 address of the pools (``top_down``: the highest of each
    pool first, for load balancers, so that they stand apart from servers)."""
    taken = _taken(cloud)
    for pool in PUBLIC_IPV4_POOLS:
        if pool in cloud.machines.unusable_ipv4_pools:
            continue
        net = ipaddress.ip_network(pool)
        first, last = int(net.network_address) + 2, int(net.broadcast_address) - 1  # +1: the gateway
        for n in range(last, first - 1, -1) if top_down else range(first, last + 1):
            if str(host := ipaddress.IPv4Address(n)) not in taken:
                return str(host)
    raise errors.ApiError("resource_unavailable", "no public IPv4 address left in localcloud's address pools")


def allocate_ipv6(cloud: Cloud) -> str:
    """The lowest free /64 network (as ``2001:db8:0:1::/64``)."""
    taken = _taken(cloud)
    nets = ipaddress.ip_network(PUBLIC_IPV6_POOL).subnets(new_prefix=64)
    next(nets)
    for _ in range(65_535):
        net = str(next(nets))
        if net not in taken:
            return net
    raise errors.ApiError("resource_unavailable", "no public IPv6 network left in localcloud's address pool")


def default_dns_ptr(ip: str) -> str:
    """The reverse DNS name Hetzner gives a fresh IPv4 address."""
    return "static." + ".".join(reversed(ip.split("."))) + ".clients.your-server.de"


def new_doc(cloud: Cloud, ip_type: str, location: str, *, name: str | None = None,
            assignee_id: int | None = None, auto_delete: bool = False,
            labels: dict[str, str] | None = None) -> Doc:
    """Create and store a primary IP with a fresh address (servers use this on create)."""
    ident = cloud.store.next_id(KIND)
    ip = allocate_ipv4(cloud) if ip_type == "ipv4" else allocate_ipv6(cloud)
    doc: Doc = {
        "id": ident, "name": name or f"primary_ip-{ident}", "labels": labels or {}, "created": now_iso(),
        "blocked": False, "ip": ip, "type": ip_type,
        "dns_ptr": [{"ip": ip, "dns_ptr": default_dns_ptr(ip)}] if ip_type == "ipv4" else [],
        "protection": {"delete": False}, "auto_delete": auto_delete, "assignee_type": "server",
        "assignee_id": assignee_id, "_location": location,
    }
    cloud.store.put(KIND, doc)
    return doc


def contains(doc: Doc, ip: str) -> bool:
    """Whether ``ip`` is this primary IP (IPv4) or inside its /64 (IPv6)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if doc["type"] == "ipv4":
        return bool(str(addr) == doc["ip"])
    return addr.version == 6 and addr in ipaddress.ip_network(str(doc["ip"]))


def set_dns_ptr(doc: Doc, ip: str, dns_ptr: str | None) -> None:
    """Set or reset (None) the reverse DNS entry of one address of this primary IP."""
    entries = [e for e in doc["dns_ptr"] if e["ip"] != ip]
    if dns_ptr is not None:
        entries.append({"ip": ip, "dns_ptr": dns_ptr})
    elif doc["type"] == "ipv4":
        entries.append({"ip": ip, "dns_ptr": default_dns_ptr(ip)})
    doc["dns_ptr"] = entries


def server_slot(ip_type: str) -> str:
    """Key in ``server.public_net`` that holds the id of a primary IP of this type."""
    return "_ipv4" if ip_type == "ipv4" else "_ipv6"


def _public_net_changed(cloud: Cloud, server: Doc) -> None:
    """A primary IP was assigned or unassigned: the machine's eth0 follows, and what depends on
    the server's addresses (firewalls, load balancers' public-IP targets) listens for the event."""
    if cloud.store.get("server", server["id"]) is None:
        return
    if cloud.machines.real:
        cloud.machines.set_public(int(server["id"]), *public_addresses(cloud, server))
    events.emit(cloud, "server.public_net_changed", server=server)


def _link(cloud: Cloud, doc: Doc, server: Doc | None) -> None:
    """Assign (server) or unassign (None), changing both documents."""
    slot = server_slot(doc["type"])
    if doc.get("assignee_id") is not None:
        old = cloud.store.get("server", doc["assignee_id"])
        if old is not None and old.get("public_net", {}).get(slot) == doc["id"]:
            old["public_net"][slot] = None
            cloud.store.put("server", old)
            _public_net_changed(cloud, old)
    doc["assignee_id"] = server["id"] if server else None
    if server is not None:
        server.setdefault("public_net", {})[slot] = doc["id"]
        cloud.store.put("server", server)
        _public_net_changed(cloud, server)
    cloud.store.put(KIND, doc)


# -- rendering ----------------------------------------------------------------------------
def render(cloud: Cloud, doc: Doc) -> Doc:
    out = public(doc)
    out["location"] = dict(cloud.products.location(doc["_location"]) or {})
    out["dns_ptr"] = [dict(e) for e in doc["dns_ptr"]]
    return out


def _server_location(cloud: Cloud, server: Doc) -> str:
    dc = cloud.products.datacenter(server["_datacenter"])
    return str(dc["location"]["name"]) if dc else ""


def _assignable_server(cloud: Cloud, ident: Any, ip_type: str, field: str) -> Doc:
    """The server a primary IP may be assigned to, or the spec's error why not."""
    if isinstance(ident, bool) or not isinstance(ident, int):
        raise errors.invalid_field(field, "must be an integer")
    server = cloud.store.get("server", ident)
    if server is None:
        raise errors.invalid_field(field, f"server {ident} not found")
    if server["status"] != "off":
        raise errors.ApiError("server_not_stopped", f"server {ident} must be powered off", status=422)
    cloud.ensure_unlocked("server", server["id"])  # assigning is an action on the server too
    if server.get("public_net", {}).get(server_slot(ip_type)) is not None:
        raise errors.ApiError(f"server_has_{ip_type}", f"server {ident} already has an {ip_type} address",
                              status=422)
    return server


# -- routes -------------------------------------------------------------------------------
@route("GET", "/primary_ips")
def list_primary_ips(req: Request) -> Reply:
    items = filter_common(req, req.cloud.store.all(KIND))
    if (ip := req.q("ip")) is not None:
        items = [p for p in items if p["ip"] == ip]
    rendered = [render(req.cloud, p) for p in sort_items(req, items, ("id", "created"))]
    return page(req, "primary_ips", rendered)


@route("POST", "/primary_ips")
def create_primary_ip(req: Request) -> Reply:
    cloud = req.cloud
    body = Body(req.body)
    name = body.name()
    ip_type = body.string("type", required=True, choices=("ipv4", "ipv6"))
    location_ref = body.id_or_name("location")
    body.string("assignee_type", choices=("server",))
    assignee_id = body.integer("assignee_id", nullable=True)
    auto_delete = body.boolean("auto_delete", default=False)
    labels = body.labels()
    body.check()
    location = None
    if location_ref is not None:
        loc = cloud.products.location(location_ref)
        if loc is None:
            raise errors.invalid_field("location", f"location {location_ref} not found")
        location = str(loc["name"])
    server = None
    if assignee_id is not None:
        server = _assignable_server(cloud, assignee_id, ip_type, "assignee_id")
        server_location = _server_location(cloud, server)
        if location is not None and location != server_location:
            raise errors.invalid_field("location", f"server {assignee_id} is in {server_location}")
        location = server_location
    if location is None:
        raise errors.invalid_field("location", "is required when no assignee is given")
    cloud.ensure_limit("primary_ips", KIND)
    cloud.ensure_unique_name(KIND, name)
    doc = new_doc(cloud, ip_type, location, name=name, auto_delete=auto_delete, labels=labels)
    action = None
    if server is not None:
        _link(cloud, doc, server)
        action = cloud.engine.start("assign_primary_ip", [(KIND, doc["id"]), ("server", server["id"])])
    return Reply(201, {"primary_ip": render(cloud, doc), "action": cloud.action(action) if action else None})


@route("GET", "/primary_ips/{id}")
def get_primary_ip(req: Request) -> Reply:
    return Reply(200, {"primary_ip": render(req.cloud, req.cloud.get(KIND, req.id(), "primary IP"))})


@route("PUT", "/primary_ips/{id}")
def update_primary_ip(req: Request) -> Reply:
    cloud = req.cloud
    doc = cloud.get(KIND, req.id(), "primary IP")
    body = Body(req.body)
    auto_delete = body.boolean("auto_delete")
    body.check()
    update_name_labels(req, KIND, doc)
    if auto_delete is not None:
        doc["auto_delete"] = auto_delete
    cloud.store.put(KIND, doc)
    return Reply(200, {"primary_ip": render(cloud, doc)})


@route("DELETE", "/primary_ips/{id}")
def delete_primary_ip(req: Request) -> Reply:
    cloud = req.cloud
    doc = cloud.get(KIND, req.id(), "primary IP")
    cloud.ensure_deletable(KIND, doc)
    cloud.ensure_unlocked(KIND, doc["id"])
    if doc.get("assignee_id") is not None:
        raise errors.ApiError("must_be_unassigned", f"primary IP {doc['id']} is assigned to server"
                                                    f" {doc['assignee_id']}; unassign it first", status=422)
    cloud.store.delete(KIND, doc["id"])
    return Reply(204, None)


@route("POST", "/primary_ips/{id}/actions/assign")
def assign(req: Request) -> Reply:
    cloud = req.cloud
    doc = cloud.get(KIND, req.id(), "primary IP")
    body = Body(req.body)
    body.string("assignee_type", required=True, choices=("server",))
    assignee_id = body.integer("assignee_id", required=True)
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    if doc.get("assignee_id") is not None:
        raise errors.ApiError("primary_ip_already_assigned",
                              f"primary IP {doc['id']} is already assigned to server {doc['assignee_id']}",
                              status=422)
    server = _assignable_server(cloud, assignee_id, doc["type"], "assignee_id")
    if _server_location(cloud, server) != doc["_location"]:
        raise errors.ApiError("primary_ip_datacenter_mismatch",
                              f"primary IP {doc['id']} is in a different location than server {server['id']}",
                              status=422)
    _link(cloud, doc, server)
    action = cloud.engine.start("assign_primary_ip", [(KIND, doc["id"]), ("server", server["id"])])
    return cloud.action_reply(action)


@route("POST", "/primary_ips/{id}/actions/unassign")
def unassign(req: Request) -> Reply:
    cloud = req.cloud
    doc = cloud.get(KIND, req.id(), "primary IP")
    cloud.ensure_unlocked(KIND, doc["id"])
    if doc.get("assignee_id") is None:
        raise errors.invalid_input(message=f"primary IP {doc['id']} is not assigned")
    server = cloud.store.get("server", doc["assignee_id"])
    resources: list[tuple[str, int]] = [(KIND, doc["id"])]
    if server is not None:
        if server["status"] != "off":
            raise errors.ApiError("server_not_stopped", f"server {server['id']} must be powered off", status=422)
        cloud.ensure_unlocked("server", server["id"])
        resources.append(("server", server["id"]))
    _link(cloud, doc, None)
    return cloud.action_reply(cloud.engine.start("unassign_primary_ip", resources))


@route("POST", "/primary_ips/{id}/actions/change_dns_ptr")
def change_dns_ptr(req: Request) -> Reply:
    cloud = req.cloud
    doc = cloud.get(KIND, req.id(), "primary IP")
    body = Body(req.body)
    ip = body.ip("ip", required=True)
    dns_ptr = body.string("dns_ptr", max_len=255, nullable=True)
    body.check()
    if not contains(doc, ip):
        raise errors.invalid_field("ip", f"{ip} does not belong to primary IP {doc['id']}")
    cloud.ensure_unlocked(KIND, doc["id"])
    set_dns_ptr(doc, ip, dns_ptr)
    cloud.store.put(KIND, doc)
    return cloud.action_reply(cloud.engine.start("change_dns_ptr", [(KIND, doc["id"])]))


@route("POST", "/primary_ips/{id}/actions/change_protection")
def change_primary_ip_protection(req: Request) -> Reply:
    return change_protection(req, KIND, ("delete",), required=("delete",))


register_action_routes("primary_ips", KIND)


@subscribe("server.deleted")
def _server_deleted(cloud: Cloud, server: Doc, **_: Any) -> None:
    """auto_delete primary IPs go with their server; the others stay, unassigned."""
    for doc in cloud.store.all(KIND):
        if doc.get("assignee_id") != server["id"]:
            continue
        if doc.get("auto_delete") and not doc["protection"]["delete"]:
            cloud.store.delete(KIND, doc["id"])
        else:
            doc["assignee_id"] = None
            cloud.store.put(KIND, doc)
