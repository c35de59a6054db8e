"""Request bodies of the load balancers family: services, health checks, targets, and the
checks of a target or service against the load balancer."""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from localcloud import errors
from localcloud.api.load_balancers.document import (
    _NAME,
    _PRIVATE_V4,
    _STATUS_CODE,
    ALGORITHMS,
    DEFAULT_LISTEN_PORT,
    HEALTH_HTTP_DEFAULTS,
    HTTP_DEFAULTS,
    KIND,
    PROTOCOLS,
    TARGET_TYPES,
    lb_networks,
    lb_type,
    server_public_ipv4,
    server_public_ipv6_net,
    shared_private_ip,
)
from localcloud.cloud import Cloud
from localcloud.labels import parse_selector
from localcloud.store import Doc
from localcloud.validate import Body


# -- request bodies -------------------------------------------------------------------------
def read_name(body: Body, required: bool) -> Any:
    """Load balancer names: 1-128 characters without surrounding whitespace (the spec)."""
    name = body.string("name", required=required)
    if name is not None and not (len(name) <= 128 and _NAME.fullmatch(name)):
        body.problem("name", "must be 1-128 characters without surrounding whitespace")
        return None
    return name


def read_port(body: Body, key: str, required: bool = False) -> Any:
    return body.integer(key, required=required, minimum=1, maximum=65535)


def default_health_check(protocol: str, port: int) -> Doc:
    hc: Doc = {"protocol": "http" if protocol == "http" else "tcp", "port": port, "interval": 15, "timeout": 10,
               "retries": 3}
    if hc["protocol"] == "http":
        hc["http"] = copy.deepcopy(HEALTH_HTTP_DEFAULTS)
    return hc


def _read_health_http(hb: Body, current: Doc, complete: bool = False) -> Doc:
    """The http part of a health check; ``complete``: the path must be given (the spec requires it
    in a load balancer create, not in add_service or update_service). The spec requires domain
    there too, but the real API takes a check without one: hcloud-python and the hcloud CLI leave
    it out unless set (tests/spec.py REAL_API_ACCEPTS); missing is null, no Host header."""
    out = {**copy.deepcopy(HEALTH_HTTP_DEFAULTS), **copy.deepcopy(current)}
    if "domain" in hb.data:
        domain = hb.data["domain"]
        if domain is not None and (not isinstance(domain, str) or len(domain) > 128
                                   or any(c in domain for c in " %\\")):
            hb.problem("domain", "must be at most 128 characters without spaces, '%' or '\\'")
        else:
            out["domain"] = domain
    path = hb.string("path", required=complete, max_len=256)
    if path is not None:
        if not path.startswith("/") or " " in path:
            hb.problem("path", "must start with '/' and contain no spaces")
        else:
            out["path"] = path
    response = hb.string("response", max_len=256)
    if response is not None:
        out["response"] = response
    codes = hb.array("status_codes")
    if codes is not None:
        if len(codes) > 20 or not all(isinstance(c, str) and _STATUS_CODE.fullmatch(c) for c in codes):
            hb.problem("status_codes", "must be at most 20 codes such as 200, 2?? or 3*")
        else:
            out["status_codes"] = list(codes)
    tls = hb.boolean("tls")
    if tls is not None:
        out["tls"] = tls
    return out


def _read_health_check(hcb: Body, current: Doc, complete_http: bool = False) -> Doc:
    """A health check as given: the spec requires all of protocol, port, interval, timeout and
    retries whenever one is sent (in a create, add_service and update_service alike)."""
    hc = copy.deepcopy(current)
    protocol = hcb.string("protocol", required=True, choices=("tcp", "http"))
    if protocol is not None:
        hc["protocol"] = protocol
    for key, lo, hi in (("port", 1, 65535), ("interval", 3, 60), ("timeout", 1, 60), ("retries", 1, 5)):
        value = hcb.integer(key, required=True, minimum=lo, maximum=hi)
        if value is not None:
            hc[key] = value
    hb = hcb.object("http")
    if hc["protocol"] == "http":
        given = hb is not None
        hb = hb or Body({}, prefix=f"{hcb.prefix}http.")
        hc["http"] = _read_health_http(hb, hc.get("http") or {}, complete=complete_http and given)
        hcb.merge(hb)
    else:
        if hb is not None:
            hcb.problem("http", "is only valid for health checks with protocol http")
        hc.pop("http", None)
    return hc


def _read_http(cloud: Cloud, hb: Body, protocol: str, current: Doc) -> Doc:
    http = {**copy.deepcopy(HTTP_DEFAULTS), **copy.deepcopy(current)}
    cookie_name = hb.string("cookie_name", max_len=100)
    if cookie_name is not None:
        if not cookie_name:
            hb.problem("cookie_name", "must not be empty")
        http["cookie_name"] = cookie_name
    for key, lo, hi in (("cookie_lifetime", 30, 86400), ("timeout_idle", 30, 300)):
        value = hb.integer(key, minimum=lo, maximum=hi)
        if value is not None:
            http[key] = value
    for key in ("sticky_sessions", "redirect_http"):
        flag = hb.boolean(key)
        if flag is not None:
            http[key] = flag
    certs = hb.array("certificates")
    if certs is not None:
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in certs):
            hb.problem("certificates", "must be certificate IDs")
        else:
            missing = [c for c in certs if cloud.store.get("certificate", c) is None]
            if missing:
                hb.problem("certificates", f"certificate {missing[0]} not found")
            http["certificates"] = list(certs)
    if protocol == "http":
        if certs:
            hb.problem("certificates", "are only valid for protocol https")
        if hb.data.get("redirect_http"):
            hb.problem("redirect_http", "is only valid for protocol https")
        http["certificates"], http["redirect_http"] = [], False
    return http


def read_service(cloud: Cloud, data: Any, prefix: str = "", current: Doc | None = None,
                 in_create: bool = False) -> tuple[Doc, Body]:
    """A full service from a create/add body (defaults filled in), or ``current`` updated;
    ``in_create``: a service of a load balancer create, whose health check's http needs a path."""
    body = Body(data, prefix)
    svc: Doc = copy.deepcopy(current) if current else {}
    protocol = body.string("protocol", required=current is None, choices=PROTOCOLS)
    if protocol is not None:
        svc["protocol"] = protocol
    proto = svc.get("protocol") or "tcp"
    new = current is None  # a create or add_service: the spec requires the whole service
    if new:
        listen = read_port(body, "listen_port", required=True)
        svc["listen_port"] = listen if listen is not None else DEFAULT_LISTEN_PORT.get(proto, 0)
    destination = read_port(body, "destination_port", required=new)
    if destination is not None:
        svc["destination_port"] = destination
    svc.setdefault("destination_port", 80)
    proxy = body.boolean("proxyprotocol", required=new)
    svc["proxyprotocol"] = proxy if proxy is not None else bool(svc.get("proxyprotocol", False))
    hcb = body.object("health_check", required=new)
    hc = svc.get("health_check") or default_health_check(proto, svc["destination_port"])
    if hcb is not None:
        hc = _read_health_check(hcb, hc, complete_http=in_create)
        body.merge(hcb)
    svc["health_check"] = hc
    hb = body.object("http")
    if proto == "tcp":
        if hb is not None:
            body.problem("http", "is only valid for protocol http and https")
        svc.pop("http", None)
    else:
        hb = hb or Body({}, prefix=f"{prefix}http.")
        svc["http"] = _read_http(cloud, hb, proto, svc.get("http") or {})
        body.merge(hb)
    # the documented key order, so responses read like the real API's
    order = ("protocol", "listen_port", "destination_port", "proxyprotocol", "health_check", "http")
    return {k: svc[k] for k in order if k in svc}, body


def read_target(data: Any, prefix: str = "", *, removing: bool = False) -> tuple[Doc, Body]:
    """A target as stored: {type, server:{id[,ip]}|label_selector:{selector}|ip:{ip}[, use_private_ip]}.

    Every one of server, label_selector and ip that the body holds is checked as the spec types it,
    whatever the type (invalid_input even where the type ignores it); what they mean, only where
    the type uses them.
    """
    body = Body(data, prefix)
    ttype = body.string("type", required=True, choices=TARGET_TYPES)
    upi = body.boolean("use_private_ip")
    target: Doc = {"type": ttype}
    sb = body.object("server", required=ttype == "server")
    if sb is not None:
        sid = sb.integer("id", required=True)
        sip = sb.ip("ip") if ttype == "server" else sb.string("ip")
        if ttype == "server":
            target["server"] = {"id": sid} | ({"ip": sip} if sip is not None else {})
            if sip is not None and upi:
                sb.problem("ip", "is only valid for public targets")
        body.merge(sb)
    lsb = body.object("label_selector", required=ttype == "label_selector")
    if lsb is not None:
        selector = lsb.string("selector", required=True, max_len=1000)
        if selector is not None and ttype == "label_selector":
            try:
                parse_selector(selector)
            except errors.ApiError as exc:
                lsb.problem("selector", exc.message)
        if ttype == "label_selector":
            target["label_selector"] = {"selector": selector}
        body.merge(lsb)
    ipb = body.object("ip", required=ttype == "ip")
    if ipb is not None:
        address = ipb.ip("ip", required=True) if ttype == "ip" else ipb.string("ip", required=True)
        if ttype == "ip":
            target["ip"] = {"ip": address}
        body.merge(ipb)
    if ttype in ("server", "label_selector"):
        target["use_private_ip"] = bool(upi)
    elif ttype == "ip" and upi and not removing:
        body.problem("use_private_ip", "is only valid for targets of type server and label_selector")
    return target, body


def same_target(a: Doc, b: Doc) -> bool:
    if a["type"] != b["type"]:
        return False
    if a["type"] == "server":
        return bool(a["server"]["id"] == b["server"]["id"])
    if a["type"] == "label_selector":
        return bool(a["label_selector"]["selector"] == b["label_selector"]["selector"])
    return bool(ipaddress.ip_address(a["ip"]["ip"]) == ipaddress.ip_address(b["ip"]["ip"]))


def _is_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if ip.version == 4:
        return any(ip in n for n in _PRIVATE_V4)
    return ip in ipaddress.ip_network("fc00::/7")


def _cloud_ips(cloud: Cloud) -> set[str]:
    """Public addresses of Hetzner Cloud resources: never allowed as IP targets."""
    ips: set[str] = set()
    for pip in cloud.store.all("primary_ip"):
        if pip.get("ip"):
            ips.add(str(pip["ip"]).split("/")[0])
    for server in cloud.store.all("server"):
        if v4 := server_public_ipv4(cloud, server):
            ips.add(v4)
    for lb in cloud.store.all(KIND):
        ips.add(lb["public_net"]["ipv4"]["ip"])
        ips.add(lb["public_net"]["ipv6"]["ip"])
    return ips


def check_target(cloud: Cloud, lb: Doc, target: Doc, field: str = "targets") -> None:
    """Refuse what the API refuses for a new target (the target is not yet in ``lb``)."""
    if any(same_target(target, t) for t in lb["targets"]):
        raise errors.ApiError("target_already_defined", "the target is already defined on this load balancer")
    max_targets = int(lb_type(cloud, lb)["max_targets"])
    if len(lb["targets"]) + 1 > max_targets:
        raise errors.resource_limit_exceeded(
            "targets", f"load balancer type {lb_type(cloud, lb)['name']} allows at most {max_targets} targets")
    upi = bool(target.get("use_private_ip"))
    if target["type"] in ("server", "label_selector"):
        if upi and not lb_networks(cloud, lb):
            raise errors.ApiError("load_balancer_not_attached_to_network",
                                  "use_private_ip needs the load balancer to be attached to a network")
        if not upi and not lb["public_net"]["enabled"]:
            raise errors.ApiError("load_balancer_public_interface_disabled",
                                  "the load balancer's public interface is disabled: use private IPs")
    if target["type"] == "server":
        server = cloud.store.get("server", target["server"]["id"])
        if server is None:
            raise errors.invalid_field(f"{field}.server.id", f"server {target['server']['id']} not found")
        if upi:
            if shared_private_ip(cloud, lb, server) is None:
                raise errors.ApiError("resolve_cloud_private_targets_error",
                                      f"server {server['id']} is not attached to a network of the load balancer")
            return
        v4 = server_public_ipv4(cloud, server)
        requested = target["server"].get("ip")
        if requested is not None:
            v6 = server_public_ipv6_net(cloud, server)
            addr = ipaddress.ip_address(requested)
            in_v6 = v6 is not None and addr.version == 6 and addr in ipaddress.ip_network(v6, strict=False)
            if requested != v4 and not in_v6:
                raise errors.ApiError("ip_not_assigned_to_server",
                                      f"{requested} is neither the primary IPv4 nor in the IPv6 subnet of "
                                      f"server {server['id']}")
        elif v4 is None:
            raise errors.ApiError("resolve_cloud_public_targets_error",
                                  f"server {server['id']} has no public IPv4 address")
    elif target["type"] == "ip":
        addr = ipaddress.ip_address(target["ip"]["ip"])
        if str(addr) in _cloud_ips(cloud):
            raise errors.ApiError("cloud_resource_ip_not_allowed",
                                  f"{addr} belongs to a Hetzner Cloud resource and cannot be a target")
        if _is_private(addr):
            networks = [cloud.store.get("network", n) for n in lb_networks(cloud, lb)]
            if not networks:
                raise errors.ApiError("load_balancer_not_attached_to_network",
                                      "a private IP target needs the load balancer to be attached to a network")
            vswitch = [ipaddress.ip_network(s["ip_range"]) for net in networks if net
                       for s in net.get("subnets", []) if s.get("type") == "vswitch"]
            if not vswitch:
                raise errors.ApiError("network_has_no_vswitch_subnet",
                                      f"{addr} is private but no attached network has a vswitch subnet")
            if not any(addr in n for n in vswitch):
                raise errors.ApiError("ip_not_in_vswitch_subnet", f"{addr} is not in a vswitch subnet")


def check_new_service(cloud: Cloud, lb: Doc, svc: Doc) -> None:
    if any(s["listen_port"] == svc["listen_port"] for s in lb["services"]):
        raise errors.ApiError("source_port_already_used", f"listen port {svc['listen_port']} is already used",
                              status=412)
    max_services = int(lb_type(cloud, lb)["max_services"])
    if len(lb["services"]) + 1 > max_services:
        raise errors.resource_limit_exceeded(
            "services", f"load balancer type {lb_type(cloud, lb)['name']} allows at most {max_services} services")



# -- POST /load_balancers ------------------------------------------------------------------------
@dataclass
class CreateLoadBalancer:
    """The body of POST /load_balancers, read and checked, its type and location resolved."""

    name: str
    lb_type: Doc
    location: Doc
    algorithm: str
    network_id: int | None
    public_interface: bool
    labels: dict[str, str] | None
    services: list[Doc] = field(default_factory=list)
    targets: list[Doc] = field(default_factory=list)


def read_create(cloud: Cloud, raw: Any) -> CreateLoadBalancer:
    """invalid_input naming every field that is wrong (in the order they are read), or the body."""
    body = Body(raw)
    name = read_name(body, required=True)
    type_ref = body.id_or_name("load_balancer_type", required=True)
    algo = body.object("algorithm")
    algorithm = "round_robin"
    if algo is not None:
        algorithm = algo.string("type", required=True, choices=ALGORITHMS) or algorithm
        body.merge(algo)
    location_ref, zone_ref = body.id_or_name("location"), body.string("network_zone")
    network_id, public_interface = body.integer("network"), body.boolean("public_interface", default=True)
    labels = body.labels()
    if body.has("public_net"):
        # Hetzner added existing Primary IPs for load balancers on 2026-10-05 (after the spec
        # copy); refuse it loudly rather than silently allocate other addresses
        raise errors.ApiError("unsupported_error", "localcloud does not assign existing Primary IPs to "
                                                   "load balancers: omit public_net")
    services, targets = _read_services_targets(cloud, body)
    ltype, location = _resolve_type_location(cloud, body, type_ref, location_ref, zone_ref)
    body.check()
    assert ltype is not None and location is not None
    return CreateLoadBalancer(name, ltype, location, algorithm, network_id, public_interface, labels, services,
                              targets)


def _read_services_targets(cloud: Cloud, body: Body) -> tuple[list[Doc], list[Doc]]:
    raw_services = body.array("services", default=[])
    raw_targets = body.array("targets", default=[])
    services = []
    for i, raw in enumerate(raw_services):
        svc, sb = read_service(cloud, raw, f"services[{i}].", in_create=True)
        body.merge(sb)
        services.append(svc)
    targets = []
    for i, raw in enumerate(raw_targets):
        target, tb = read_target(raw, f"targets[{i}].")
        body.merge(tb)
        targets.append(target)
    return services, targets


def _resolve_type_location(cloud: Cloud, body: Body, type_ref: Any, location_ref: Any,
                           zone_ref: str | None) -> tuple[Doc | None, Doc | None]:
    """The load balancer type, and the location (given, or the first in the network zone)."""
    if location_ref is not None and zone_ref is not None:
        body.problem("location", "only one of location or network_zone may be given")
    elif location_ref is None and zone_ref is None:
        body.problem("location", "one of location or network_zone is required")
    ltype = cloud.products.load_balancer_type(type_ref) if type_ref is not None else None
    if type_ref is not None and ltype is None:
        body.problem("load_balancer_type", f"load balancer type {type_ref} not found")
    location = None
    if location_ref is not None:
        location = cloud.products.location(location_ref)
        if location is None:
            body.problem("location", f"location {location_ref} not found")
    elif zone_ref is not None:
        location = next((loc for loc in cloud.products.locations if loc["network_zone"] == zone_ref), None)
        if location is None:
            body.problem("network_zone", f"network zone {zone_ref} not found")
    return ltype, location
