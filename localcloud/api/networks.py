"""Private networks: ip_range, subnets and routes, validated as the spec describes them.

Attachments live only on the attached resources (``server.private_net``,
``load_balancer.private_net``); ``servers`` and ``load_balancers`` of a network and every
subnet ``gateway`` are computed at render time, so they can never go stale.

Decisions where the spec leaves room:
- ``DELETE /networks/{id}`` is NOT refused while resources are attached: the spec says
  "Attached resources will be detached automatically", so the network goes and the event
  ``network.deleted`` lets the servers and load balancers families drop their entries.
  Only delete protection (423 ``protected``) stops it.
- ``delete_subnet`` of a subnet holding attached IPs is refused with ``service_error``
  "cannot remove subnet because servers are attached to it", the real API's answer.
- Overlapping subnets or route destinations answer ``networks_overlap``; everything else
  that is malformed answers ``invalid_input`` naming the field.
- A change while an action still runs on the network answers ``conflict`` (the spec's
  wording for every network write), which hcloud-python retries by itself.
- Subnet and route changes take effect in the reply; if the action fails (injected
  fault), the failure handler undoes them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import localcloud.api.ipam as ipam
from localcloud import errors, events
from localcloud.actions import on_complete, on_failure
from localcloud.api.common import change_protection, public, register_action_routes
from localcloud.cloud import Cloud, now_iso
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.store import Doc, Store
from localcloud.validate import Body

KIND = "network"
NETWORK_ZONES = ("eu-central", "us-east", "us-west", "ap-southeast")
SUBNET_TYPES = ("cloud", "server", "vswitch")
MAX_SERVERS_PER_NETWORK = 100
NAME_MAX = 128
NETWORK_COMMANDS = ("add_subnet", "delete_subnet", "add_route", "delete_route", "change_ip_range")
RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
DEFAULT_ROUTE = ipaddress.IPv4Network("0.0.0.0/0")
PUBLIC_GATEWAY = ipaddress.IPv4Address("172.31.1.1")  # the servers' public-interface gateway
NETWORK_MIN_PREFIX = 24  # a network is at least a /24
SUBNET_MIN_PREFIX = 30  # a subnet is at least a /30

Net = ipaddress.IPv4Network


# -- helpers other families call -------------------------------------------------------------
def attached_server_ids(cloud: Cloud, network_id: int) -> list[int]:
    return sorted({doc["id"] for kind, doc, _ in ipam.attachments(cloud, network_id) if kind == "server"})


def ensure_capacity(cloud: Cloud, network: Doc, adding: int = 1) -> None:
    """Refuse to attach more servers than a network holds (100 on the real service)."""
    if len(attached_server_ids(cloud, network["id"])) + adding > MAX_SERVERS_PER_NETWORK:
        raise errors.resource_limit_exceeded(
            "servers_per_network",
            f"network {network['id']} already holds the maximum of {MAX_SERVERS_PER_NETWORK} servers")


def allocate_ip(cloud: Cloud, network: Doc, requested_ip: str | None = None, field: str = "ip") -> str:
    """A free IP in a cloud subnet of ``network`` (or ``requested_ip`` if it is free)."""
    return ipam.allocate_ip(cloud, network, requested_ip, field)


def subnet_gateway(network: Doc, subnet: Doc) -> str:
    """Cloud subnets route through the network's first IP; a vSwitch subnet through its own first IP."""
    if subnet["type"] == "vswitch":
        return str(next(ipaddress.ip_network(subnet["ip_range"]).hosts()))
    return ipam.gateway(network)


# -- rendering ------------------------------------------------------------------------------
def render(cloud: Cloud, doc: Doc) -> Doc:
    out = public(doc)
    subnets = []
    for subnet in doc["subnets"]:
        item = {"type": subnet["type"], "ip_range": subnet["ip_range"], "network_zone": subnet["network_zone"],
                "gateway": subnet_gateway(doc, subnet)}
        if subnet["type"] == "vswitch":
            item["vswitch_id"] = subnet.get("vswitch_id")
        subnets.append(item)
    out["subnets"] = subnets
    out["routes"] = [dict(r) for r in doc["routes"]]
    out["servers"] = attached_server_ids(cloud, doc["id"])
    out["load_balancers"] = sorted({d["id"] for kind, d, _ in ipam.attachments(cloud, doc["id"])
                                    if kind == "load_balancer"})
    return out


# -- validation -----------------------------------------------------------------------------

def _parse_net(body: Body, key: str, required: bool = True) -> Net | None:
    """An IPv4 CIDR with no host bits set."""
    text = body.string(key, required=required)
    if text is None:
        return None
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError:
        body.problem(key, f"{text} is not a valid CIDR network (host bits must be zero)")
        return None
    if not isinstance(net, Net):
        body.problem(key, "must be an IPv4 network")
        return None
    return net


def _is_private(net: Net) -> bool:
    return any(net.subnet_of(block) for block in RFC1918)


def _check_network_range(body: Body, key: str, net: Net | None) -> Net | None:
    if net is None:
        return None
    if not _is_private(net):
        body.problem(key, "must be inside one of the private ranges of RFC1918"
                          " (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)")
        return None
    if net.prefixlen > NETWORK_MIN_PREFIX:
        body.problem(key, f"network must be at least a /{NETWORK_MIN_PREFIX}")
        return None
    return net


def _overlaps(a: Net, b: Net) -> bool:
    return a.overlaps(b)


def _first_free_24(network_range: Net, taken: list[Net]) -> Net | None:
    """The first /24 of the network that overlaps nothing taken (the API's default subnet)."""
    candidates = [network_range] if network_range.prefixlen >= 24 else network_range.subnets(new_prefix=24)
    for candidate in candidates:
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    return None


def _route_dests(routes: list[Doc]) -> list[Net]:
    return [ipaddress.IPv4Network(r["destination"]) for r in routes
            if ipaddress.IPv4Network(r["destination"]) != DEFAULT_ROUTE]


def _read_subnet(data: Any, prefix: str, network_range: Net | None, subnets: list[Doc],
                 routes: list[Doc]) -> tuple[Body, Doc | None]:
    """Validate one subnet against the network; returns the Body (problems) and the subnet."""
    body = Body(data, prefix=prefix)
    stype = body.string("type", required=True, choices=SUBNET_TYPES)
    zone = body.string("network_zone", required=True)
    if zone is not None and zone not in NETWORK_ZONES:
        body.problem("network_zone", f"unknown network zone {zone}; one of {', '.join(NETWORK_ZONES)}")
        zone = None
    net = _parse_net(body, "ip_range", required=False)
    vswitch_id = body.integer("vswitch_id", minimum=1)
    if stype == "vswitch" and vswitch_id is None and not body.problems.get(prefix + "vswitch_id"):
        body.problem("vswitch_id", "is required for subnets of type vswitch")
    if stype in ("cloud", "server") and vswitch_id is not None:
        body.problem("vswitch_id", "must only be given for subnets of type vswitch")
    if net is not None and net.prefixlen > SUBNET_MIN_PREFIX:
        body.problem("ip_range", f"subnet must be at least a /{SUBNET_MIN_PREFIX}")
        net = None
    if net is not None and network_range is not None and not net.subnet_of(network_range):
        body.problem("ip_range", f"{net} is not inside the network's ip_range {network_range}")
        net = None
    if body.problems or stype is None or zone is None or network_range is None:
        return body, None
    taken = [ipaddress.IPv4Network(s["ip_range"]) for s in subnets] + _route_dests(routes)
    if net is None:
        net = _first_free_24(network_range, taken)
        if net is None:
            body.problem("ip_range", "no free /24 range left in the network; give an ip_range")
            return body, None
    else:
        for other in taken:
            if _overlaps(net, other):
                raise errors.ApiError("networks_overlap", f"subnet {net} overlaps with {other}")
    subnet: Doc = {"type": stype, "ip_range": str(net), "network_zone": zone}
    if stype == "vswitch":
        subnet["vswitch_id"] = vswitch_id
    return body, subnet


def _read_route(data: Any, prefix: str, network_range: Net | None, subnets: list[Doc],
                routes: list[Doc]) -> tuple[Body, Doc | None]:
    """Validate one route: destination private or 0.0.0.0/0, gateway inside the network."""
    body = Body(data, prefix=prefix)
    dest = _parse_net(body, "destination")
    gateway_text = body.string("gateway", required=True)
    gateway: ipaddress.IPv4Address | None = None
    if gateway_text is not None:
        try:
            addr = ipaddress.ip_address(gateway_text)
        except ValueError:
            body.problem("gateway", f"{gateway_text} is not a valid IP address")
        else:
            if not isinstance(addr, ipaddress.IPv4Address):
                body.problem("gateway", "must be an IPv4 address")
            else:
                gateway = addr
    if dest is not None:
        if dest != DEFAULT_ROUTE and not _is_private(dest):
            body.problem("destination", "must be inside a private range of RFC1918 or be 0.0.0.0/0")
        elif dest != DEFAULT_ROUTE and PUBLIC_GATEWAY in dest:
            body.problem("destination", f"must not contain {PUBLIC_GATEWAY}")
    if gateway is not None and network_range is not None:
        if gateway == PUBLIC_GATEWAY:
            body.problem("gateway", f"must not be {PUBLIC_GATEWAY}")
        elif gateway not in network_range:
            body.problem("gateway", f"{gateway} is not inside the network's ip_range {network_range}")
        elif gateway == network_range.network_address + 1:
            body.problem("gateway", f"{gateway} is the network's own gateway")
        elif any(s["type"] == "vswitch" and gateway in ipaddress.IPv4Network(s["ip_range"]) for s in subnets):
            body.problem("gateway", f"{gateway} is behind a vSwitch")
    if body.problems or dest is None or gateway is None:
        return body, None
    if dest == DEFAULT_ROUTE:
        if any(r["destination"] == str(DEFAULT_ROUTE) for r in routes):
            raise errors.ApiError("networks_overlap", "a default route 0.0.0.0/0 already exists")
    else:
        for other in [ipaddress.IPv4Network(s["ip_range"]) for s in subnets] + _route_dests(routes):
            if dest.overlaps(other):
                raise errors.ApiError("networks_overlap", f"route destination {dest} overlaps with {other}")
    return body, {"destination": str(dest), "gateway": str(gateway)}


def _ensure_idle(cloud: Cloud, doc: Doc) -> None:
    """The spec answers ``conflict`` while a change is being performed on the network.

    Only the network's own actions count: servers attaching to it (``attach_to_network``
    names the network too) do not block subnet or route changes.
    """
    now = cloud.engine.clock()
    for action in cloud.store.all("action"):
        if action["status"] != "running" or action["command"] not in NETWORK_COMMANDS or action["_t0"] > now:
            continue
        if any(r["type"] == KIND and r["id"] == doc["id"] for r in action["resources"]):
            raise errors.conflict(f"network {doc['id']} is being changed by action {action['id']}, please retry")


def _network(req: Request) -> Doc:
    return req.cloud.get(KIND, req.id(), "network")


def _start(cloud: Cloud, command: str, doc: Doc, params: dict[str, Any]) -> Reply:
    action = cloud.engine.start(command, [(KIND, doc["id"])], finish=f"network.{command}", params=params)
    return cloud.action_reply(action)


# -- collection ------------------------------------------------------------------------------
@route("GET", "/networks")
def list_networks(req: Request) -> Reply:
    items = filter_common(req, req.cloud.store.all(KIND))
    rendered = [render(req.cloud, n) for n in sort_items(req, items, ("id", "name", "created"))]
    return page(req, "networks", rendered)


@route("POST", "/networks")
def create_network(req: Request) -> Reply:
    cloud = req.cloud
    body = Body(req.body)
    name = body.name("name", required=True, max_len=NAME_MAX)
    net = _check_network_range(body, "ip_range", _parse_net(body, "ip_range"))
    labels = body.labels()
    expose = body.boolean("expose_routes_to_vswitch", default=False)
    raw_subnets = body.array("subnets", default=[])
    raw_routes = body.array("routes", default=[])
    body.check()
    subnets: list[Doc] = []
    for i, item in enumerate(raw_subnets):
        sub_body, subnet = _read_subnet(item, f"subnets[{i}].", net, subnets, [])
        body.merge(sub_body)
        if subnet is not None:
            subnets.append(subnet)
    body.check()
    routes: list[Doc] = []
    for i, item in enumerate(raw_routes):
        route_body, new_route = _read_route(item, f"routes[{i}].", net, subnets, routes)
        body.merge(route_body)
        if new_route is not None:
            routes.append(new_route)
    body.check()
    cloud.ensure_limit("networks", KIND)
    cloud.ensure_unique_name(KIND, name)
    doc: Doc = {"id": cloud.store.next_id(KIND), "name": name, "ip_range": str(net), "subnets": subnets,
                "routes": routes, "labels": labels or {}, "protection": {"delete": False},
                "expose_routes_to_vswitch": expose, "created": now_iso()}
    cloud.store.put(KIND, doc)
    return Reply(201, {"network": render(cloud, doc)})


# -- one network -----------------------------------------------------------------------------
@route("GET", "/networks/{id}")
def get_network(req: Request) -> Reply:
    return Reply(200, {"network": render(req.cloud, _network(req))})


@route("PUT", "/networks/{id}")
def update_network(req: Request) -> Reply:
    cloud = req.cloud
    doc = _network(req)
    body = Body(req.body)
    name = body.name("name", required=False, max_len=NAME_MAX)
    labels = body.labels()
    expose = body.boolean("expose_routes_to_vswitch")
    body.check()
    _ensure_idle(cloud, doc)
    if name is not None and name != doc["name"]:
        cloud.ensure_unique_name(KIND, name, except_id=doc["id"])
        doc["name"] = name
    if labels is not None:
        doc["labels"] = labels
    if expose is not None:
        doc["expose_routes_to_vswitch"] = expose
    cloud.store.put(KIND, doc)
    return Reply(200, {"network": render(cloud, doc)})


@route("DELETE", "/networks/{id}")
def delete_network(req: Request) -> Reply:
    """Delete protection stops it; attached servers and load balancers are detached (spec)."""
    cloud = req.cloud
    doc = _network(req)
    cloud.ensure_deletable(KIND, doc)
    _ensure_idle(cloud, doc)
    events.emit(cloud, "network.deleted", network=doc)
    cloud.store.delete(KIND, doc["id"])
    return Reply(204, None)


# -- actions ---------------------------------------------------------------------------------
@route("POST", "/networks/{id}/actions/add_subnet")
def add_subnet(req: Request) -> Reply:
    cloud = req.cloud
    doc = _network(req)
    body, subnet = _read_subnet(req.body, "", ipaddress.IPv4Network(doc["ip_range"]), doc["subnets"],
                                doc["routes"])
    body.check()
    assert subnet is not None  # no problems means a subnet was built
    _ensure_idle(cloud, doc)
    doc["subnets"].append(subnet)
    cloud.store.put(KIND, doc)
    return _start(cloud, "add_subnet", doc, {"network": doc["id"], "subnet": subnet})


@route("POST", "/networks/{id}/actions/delete_subnet")
def delete_subnet(req: Request) -> Reply:
    cloud = req.cloud
    doc = _network(req)
    body = Body(req.body)
    net = _parse_net(body, "ip_range")
    body.check()
    assert net is not None
    subnet = next((s for s in doc["subnets"] if s["ip_range"] == str(net)), None)
    if subnet is None:
        raise errors.invalid_field("ip_range", f"network {doc['id']} has no subnet {net}")
    _ensure_idle(cloud, doc)
    for _, _, entry in ipam.attachments(cloud, doc["id"]):
        ips = [entry["ip"], *(entry.get("alias_ips") or [])]
        if any(ipaddress.ip_address(ip) in net for ip in ips):
            raise errors.ApiError("service_error", "cannot remove subnet because servers are attached to it")
    doc["subnets"] = [s for s in doc["subnets"] if s is not subnet]
    cloud.store.put(KIND, doc)
    return _start(cloud, "delete_subnet", doc, {"network": doc["id"], "subnet": subnet})


@route("POST", "/networks/{id}/actions/add_route")
def add_route(req: Request) -> Reply:
    cloud = req.cloud
    doc = _network(req)
    body, new_route = _read_route(req.body, "", ipaddress.IPv4Network(doc["ip_range"]), doc["subnets"],
                                  doc["routes"])
    body.check()
    assert new_route is not None
    _ensure_idle(cloud, doc)
    doc["routes"].append(new_route)
    cloud.store.put(KIND, doc)
    return _start(cloud, "add_route", doc, {"network": doc["id"], "route": new_route})


@route("POST", "/networks/{id}/actions/delete_route")
def delete_route(req: Request) -> Reply:
    cloud = req.cloud
    doc = _network(req)
    body = Body(req.body)
    dest = _parse_net(body, "destination")
    gateway = body.ip("gateway", required=True)
    body.check()
    wanted = {"destination": str(dest), "gateway": str(ipaddress.ip_address(gateway))}
    if wanted not in doc["routes"]:
        raise errors.invalid_field("destination", f"network {doc['id']} has no route to {dest} via {gateway}")
    _ensure_idle(cloud, doc)
    doc["routes"] = [r for r in doc["routes"] if r != wanted]
    cloud.store.put(KIND, doc)
    return _start(cloud, "delete_route", doc, {"network": doc["id"], "route": wanted})


@route("POST", "/networks/{id}/actions/change_ip_range")
def change_ip_range(req: Request) -> Reply:
    """Only the netmask may shrink (range grows from the same first address); subnets must fit."""
    cloud = req.cloud
    doc = _network(req)
    body = Body(req.body)
    net = _check_network_range(body, "ip_range", _parse_net(body, "ip_range"))
    body.check()
    assert net is not None
    old = ipaddress.IPv4Network(doc["ip_range"])
    if net.network_address != old.network_address or net.prefixlen > old.prefixlen:
        raise errors.invalid_field("ip_range", f"the ip_range can only be extended from {old} by a smaller"
                                               " netmask on the same first address, never shrunk")
    for subnet in doc["subnets"]:
        if not ipaddress.IPv4Network(subnet["ip_range"]).subnet_of(net):
            raise errors.invalid_field("ip_range", f"subnet {subnet['ip_range']} would not fit in {net}")
    _ensure_idle(cloud, doc)
    doc["ip_range"] = str(net)
    cloud.store.put(KIND, doc)
    return _start(cloud, "change_ip_range", doc, {"network": doc["id"], "old": str(old), "new": str(net)})


@route("POST", "/networks/{id}/actions/change_protection")
def change_network_protection(req: Request) -> Reply:
    return change_protection(req, KIND, ("delete",))


register_action_routes("networks", KIND)


# -- completion and undo when an action fails (fault injection) ------------------------------
def _done(store: Store, action: Doc, params: dict[str, Any]) -> None:
    """The change was made in the request; success has nothing left to do."""


for _command in NETWORK_COMMANDS:
    on_complete(f"network.{_command}")(_done)


def _reload(store: Store, params: dict[str, Any]) -> Doc | None:
    return store.get(KIND, int(params["network"]))


@on_failure("network.add_subnet")
def _undo_add_subnet(store: Store, action: Doc, params: dict[str, Any]) -> None:
    if (doc := _reload(store, params)) is not None:
        doc["subnets"] = [s for s in doc["subnets"] if s != params["subnet"]]
        store.put(KIND, doc)


@on_failure("network.delete_subnet")
def _undo_delete_subnet(store: Store, action: Doc, params: dict[str, Any]) -> None:
    if (doc := _reload(store, params)) is not None and params["subnet"] not in doc["subnets"]:
        doc["subnets"].append(params["subnet"])
        store.put(KIND, doc)


@on_failure("network.add_route")
def _undo_add_route(store: Store, action: Doc, params: dict[str, Any]) -> None:
    if (doc := _reload(store, params)) is not None:
        doc["routes"] = [r for r in doc["routes"] if r != params["route"]]
        store.put(KIND, doc)


@on_failure("network.delete_route")
def _undo_delete_route(store: Store, action: Doc, params: dict[str, Any]) -> None:
    if (doc := _reload(store, params)) is not None and params["route"] not in doc["routes"]:
        doc["routes"].append(params["route"])
        store.put(KIND, doc)


@on_failure("network.change_ip_range")
def _undo_change_ip_range(store: Store, action: Doc, params: dict[str, Any]) -> None:
    if (doc := _reload(store, params)) is not None and doc["ip_range"] == params["new"]:
        doc["ip_range"] = params["old"]
        store.put(KIND, doc)
