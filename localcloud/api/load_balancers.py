"""Load balancers: services, targets, networks and the public interface.

Stored: the API shape for ``services``, ``targets`` (as requested: label-selector targets
are expanded to the matching servers at render time), ``private_net: [{network, ip}]``
(the only record of network attachments) and ``public_net``; ``_location`` (name) and
``_type`` (id) point into the catalogue. Changes apply when the request is accepted, so
the next request validates against them; a failed action restores the previous value.
With ``--hosts nspawn`` every change is also made real (:func:`machines_follow`:
HAProxy in a namespace of its own, ``hosts/loadbalancer.py``) and target health comes from
its health checks.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import Any

from localcloud import errors
from localcloud.actions import on_complete, on_failure
from localcloud.api import ipam, primary_ips
from localcloud.api.common import change_protection, public, register_action_routes
from localcloud.api.machine_specs import tie
from localcloud.cloud import Cloud, now_iso
from localcloud.events import subscribe
from localcloud.labels import parse_selector
from localcloud.listing import filter_common, page, sort_items
from localcloud.machines import HealthCheck, LbNic, LbSpec, Service, Target
from localcloud.router import Reply, Request, route
from localcloud.store import Doc, Store
from localcloud.validate import Body

KIND = "load_balancer"
WHAT = "load balancer"
PROTOCOLS = ("tcp", "http", "https")
ALGORITHMS = ("round_robin", "least_connections")
TARGET_TYPES = ("server", "label_selector", "ip")
# Public IPv4 addresses of load balancers come from the servers' pools (primary_ips, one set
# of used addresses), from the top down; IPv6 from a /48 servers' /64s never reach.
IPV6_PREFIX = "2001:db8:1b"
DEFAULT_LISTEN_PORT = {"http": 80, "https": 443}
HTTP_DEFAULTS: Doc = {"cookie_name": "HCLBSTICKY", "cookie_lifetime": 300, "timeout_idle": 50,
                      "certificates": [], "redirect_http": False, "sticky_sessions": False}
HEALTH_HTTP_DEFAULTS: Doc = {"domain": None, "path": "/", "response": "", "status_codes": ["2??", "3??"],
                             "tls": False}
_STATUS_CODE = re.compile(r"^[0-9?*]{1,3}$")
_PRIVATE_V4 = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
_NAME = re.compile(r"^\S(.*\S)?$")


# -- look-ups into other families' documents ------------------------------------------------
def server_public_ipv4(cloud: Cloud, server: Doc) -> str | None:
    """The server's primary IPv4: from its primary IP document, or the rendered public_net."""
    net = server.get("public_net") or {}
    pid = net.get("_ipv4")
    if pid is not None:
        pip = cloud.store.get("primary_ip", pid)
        if pip is not None and pip.get("ip"):
            return str(pip["ip"])
    v4 = net.get("ipv4")
    if isinstance(v4, dict) and v4.get("ip"):
        return str(v4["ip"])
    return None


def server_public_ipv6_net(cloud: Cloud, server: Doc) -> str | None:
    net = server.get("public_net") or {}
    pid = net.get("_ipv6")
    if pid is not None:
        pip = cloud.store.get("primary_ip", pid)
        if pip is not None and pip.get("ip"):
            return str(pip["ip"])
    v6 = net.get("ipv6")
    if isinstance(v6, dict) and v6.get("ip"):
        return str(v6["ip"])
    return None


def server_private_ip(server: Doc, network_id: int) -> str | None:
    for entry in server.get("private_net") or []:
        if entry.get("network") == network_id:
            return str(entry["ip"])
    return None


def lb_networks(cloud: Cloud, lb: Doc) -> list[int]:
    """Networks the load balancer is attached to (that still exist)."""
    return [e["network"] for e in lb.get("private_net") or [] if cloud.store.get("network", e["network"])]


def shared_private_ip(cloud: Cloud, lb: Doc, server: Doc) -> str | None:
    """The server's IP in a network the load balancer is attached to, if any."""
    for nid in lb_networks(cloud, lb):
        if ip := server_private_ip(server, nid):
            return ip
    return None


def lb_type(cloud: Cloud, lb: Doc) -> Doc:
    found = cloud.catalog.load_balancer_type(lb["_type"])
    if found is None:
        raise errors.ApiError("server_error", f"unknown load balancer type {lb['_type']}")
    return found


def lb_location(cloud: Cloud, lb: Doc) -> Doc:
    found = cloud.catalog.location(lb["_location"])
    if found is None:
        raise errors.ApiError("server_error", f"unknown location {lb['_location']}")
    return found


# -- health and rendering -------------------------------------------------------------------
def target_health(cloud: Cloud, lb: Doc, server: Doc) -> str:
    """Health of a server target without real hosts: healthy iff the server runs."""
    return "healthy" if server.get("status") == "running" else "unhealthy"


def _health_status(lb: Doc, status: str) -> list[Doc]:
    return [{"listen_port": s["listen_port"], "status": status} for s in lb["services"]]


def target_name(ip: str, server_id: int | None = None) -> str:
    """A target address's name in the real load balancer (HAProxy's server and stats rows).
    The address is part of it: one server can be a target by its public and its private IP."""
    return f"server-{server_id}-{ip}" if server_id is not None else f"ip-{ip}"


def _target_health(cloud: Cloud, lb: Doc, name: str, without_hosts: str) -> list[Doc]:
    """Per service: the real health checks' verdict with real hosts, else ``without_hosts``."""
    polled = cloud.machines.load_balancer_health(int(lb["id"]))
    if polled is None:
        return _health_status(lb, without_hosts)
    return [{"listen_port": s["listen_port"], "status": polled.get(s["listen_port"], {}).get(name, "unknown")}
            for s in lb["services"]]


def _target_ip(cloud: Cloud, lb: Doc, server: Doc, use_private_ip: bool, ip: str | None) -> str | None:
    if ip is None:
        ip = shared_private_ip(cloud, lb, server) if use_private_ip else server_public_ipv4(cloud, server)
    return ip


def _server_target(cloud: Cloud, lb: Doc, server: Doc, use_private_ip: bool, ip: str | None) -> Doc:
    ip = _target_ip(cloud, lb, server, use_private_ip, ip)
    health = _target_health(cloud, lb, target_name(ip or "", server["id"]), target_health(cloud, lb, server))
    return {"type": "server", "server": {"id": server["id"], "ip": ip or ""}, "health_status": health,
            "use_private_ip": use_private_ip}


def selector_servers(cloud: Cloud, lb: Doc, selector: str, use_private_ip: bool) -> list[Doc]:
    """Servers a label-selector target currently resolves to (private: only those on a shared network)."""
    sel = parse_selector(selector)
    out = []
    for server in cloud.store.all("server"):
        if not sel.matches(server.get("labels") or {}):
            continue
        if use_private_ip and shared_private_ip(cloud, lb, server) is None:
            continue
        out.append(server)
    return out


def render_target(cloud: Cloud, lb: Doc, target: Doc) -> Doc | None:
    if target["type"] == "server":
        server = cloud.store.get("server", target["server"]["id"])
        if server is None:
            return None
        return _server_target(cloud, lb, server, bool(target.get("use_private_ip")), target["server"].get("ip"))
    if target["type"] == "label_selector":
        upi = bool(target.get("use_private_ip"))
        selector = target["label_selector"]["selector"]
        return {"type": "label_selector", "label_selector": {"selector": selector}, "use_private_ip": upi,
                "targets": [_server_target(cloud, lb, s, upi, None)
                            for s in selector_servers(cloud, lb, selector, upi)]}
    ip = target["ip"]["ip"]
    return {"type": "ip", "ip": {"ip": ip}, "health_status": _target_health(cloud, lb, target_name(ip), "unknown")}


def target_addresses(cloud: Cloud, lb: Doc) -> list[tuple[str, str]]:
    """(name, address) of every target the load balancer forwards to now, each once: label
    selectors resolved against the servers' current labels and networks."""
    out: dict[str, str] = {}
    for target in lb["targets"]:
        upi = bool(target.get("use_private_ip"))
        if target["type"] == "server":
            server = cloud.store.get("server", target["server"]["id"])
            found = [] if server is None else [(server, target["server"].get("ip"))]
        elif target["type"] == "label_selector":
            found = [(s, None) for s in selector_servers(cloud, lb, target["label_selector"]["selector"], upi)]
        else:
            out.setdefault(target_name(target["ip"]["ip"]), target["ip"]["ip"])
            continue
        for server, requested in found:
            if ip := _target_ip(cloud, lb, server, upi, requested):
                out.setdefault(target_name(ip, int(server["id"])), ip)
    return list(out.items())


def included_traffic(cloud: Cloud, lb: Doc) -> int:
    for price in lb_type(cloud, lb).get("prices", []):
        if price["location"] == lb["_location"]:
            return int(price["included_traffic"])
    return 0


def render(cloud: Cloud, lb: Doc) -> Doc:
    out = public(lb)
    out["location"] = copy.deepcopy(lb_location(cloud, lb))
    out["load_balancer_type"] = copy.deepcopy(lb_type(cloud, lb))
    out["private_net"] = [dict(e) for e in lb.get("private_net") or []
                          if cloud.store.get("network", e["network"]) is not None]
    out["targets"] = [t for t in (render_target(cloud, lb, t) for t in lb["targets"]) if t is not None]
    out["included_traffic"] = included_traffic(cloud, lb)
    return out


# -- request bodies -------------------------------------------------------------------------
def _name(body: Body, required: bool) -> Any:
    """Load balancer names: 1-128 characters without surrounding whitespace (the spec)."""
    name = body.string("name", required=required)
    if name is not None and not (len(name) <= 128 and _NAME.fullmatch(name)):
        body.problem("name", "must be 1-128 characters without surrounding whitespace")
        return None
    return name


def _port(body: Body, key: str, required: bool = False) -> Any:
    return body.integer(key, required=required, minimum=1, maximum=65535)


def default_health_check(protocol: str, port: int) -> Doc:
    hc: Doc = {"protocol": "http" if protocol == "http" else "tcp", "port": port, "interval": 15, "timeout": 10,
               "retries": 3}
    if hc["protocol"] == "http":
        hc["http"] = copy.deepcopy(HEALTH_HTTP_DEFAULTS)
    return hc


def _read_health_http(hb: Body, current: Doc, complete: bool = False) -> Doc:
    """The http part of a health check; ``complete``: domain and path must be given (the spec
    requires both in a load balancer create, not in add_service or update_service)."""
    out = {**copy.deepcopy(HEALTH_HTTP_DEFAULTS), **copy.deepcopy(current)}
    if complete and "domain" not in hb.data:  # null is a domain here: any host
        hb.problem("domain", "is required")
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
    ``in_create``: a service of a load balancer create, whose health check's http needs domain and path."""
    body = Body(data, prefix)
    svc: Doc = copy.deepcopy(current) if current else {}
    protocol = body.string("protocol", required=current is None, choices=PROTOCOLS)
    if protocol is not None:
        svc["protocol"] = protocol
    proto = svc.get("protocol") or "tcp"
    new = current is None  # a create or add_service: the spec requires the whole service
    if new:
        listen = _port(body, "listen_port", required=True)
        svc["listen_port"] = listen if listen is not None else DEFAULT_LISTEN_PORT.get(proto, 0)
    destination = _port(body, "destination_port", required=new)
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


def _same_target(a: Doc, b: Doc) -> bool:
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
    if any(_same_target(target, t) for t in lb["targets"]):
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


# -- addresses ------------------------------------------------------------------------------
def _allocate_public(cloud: Cloud) -> tuple[str, str]:
    used6 = {lb["public_net"]["ipv6"]["ip"] for lb in cloud.store.all(KIND)}
    v6 = next((ip for n in range(1, 0x10000) if (ip := f"{IPV6_PREFIX}:{n:x}::1") not in used6), None)
    if v6 is None:
        raise errors.resource_unavailable("no public IP address left for load balancers")
    try:
        v4 = primary_ips.allocate_ipv4(cloud, top_down=True)
    except errors.ApiError:
        raise errors.resource_unavailable("no public IP address left for load balancers") from None
    return v4, v6


def default_dns_ptr(ip: str) -> str:
    return f"static.{ip.replace(':', '-')}.clients.your-server.de"


def pick_private_ip(cloud: Cloud, network: Doc, zone: str, requested: str | None = None,
                    ip_range: str | None = None) -> str:
    """A free IP for the load balancer in a subnet of its network zone (``ipam`` checks it)."""
    subnets = [ipaddress.ip_network(s["ip_range"]) for s in network.get("subnets", [])
               if s.get("type") in ("cloud", "server") and s.get("network_zone", zone) == zone]
    if not subnets:
        raise errors.ApiError("no_subnet_available", f"network {network['id']} has no subnet in zone {zone}")
    if requested is not None:
        addr = ipaddress.ip_address(requested)
        if not any(addr in n for n in subnets):
            raise errors.invalid_field("ip", f"{requested} is not in a subnet of zone {zone}")
        return ipam.allocate_ip(cloud, network, requested)
    scope = subnets
    if ip_range is not None:
        wanted = ipaddress.ip_network(ip_range)
        scope = [n for n in subnets if n.version == wanted.version and n.overlaps(wanted)]
        if not scope:
            raise errors.invalid_field("ip_range", f"{ip_range} is not inside a subnet of zone {zone}")
    taken = ipam.used_ips(cloud, network["id"]) | {ipam.gateway(network)}
    taken |= {s.get("gateway") for s in network.get("subnets", []) if s.get("gateway")}
    for net in scope:
        for host in net.hosts():
            if ip_range is not None and host not in ipaddress.ip_network(ip_range):
                continue
            if str(host) not in taken:
                return ipam.allocate_ip(cloud, network, str(host))
    raise errors.ApiError("no_subnet_available", f"network {network['id']} has no free IP address left")


def _network(cloud: Cloud, ident: int, field: str = "network") -> Doc:
    network = cloud.store.get("network", ident)
    if network is None:
        raise errors.invalid_field(field, f"network {ident} not found")
    return network


# -- actions that change the document ---------------------------------------------------------
@on_complete("load_balancer.changed")
def _changed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    """Nothing left to do: the change was applied when the request was accepted."""


@on_failure("load_balancer.changed")
def _restore(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, params["load_balancer"])
    if doc is not None:
        doc.update(params["before"])
        store.put(KIND, doc)


def _change(cloud: Cloud, lb: Doc, command: str, fields: tuple[str, ...], *,
            extra: list[tuple[str, int]] | None = None, duration_key: str | None = None) -> Doc:
    """Snapshot ``fields`` (restored if the action fails); the caller then mutates ``lb``."""
    before = {f: copy.deepcopy(lb[f]) for f in fields}
    return cloud.engine.start(command, [(KIND, lb["id"]), *(extra or [])], finish="load_balancer.changed",
                              params={"load_balancer": lb["id"], "before": before}, duration_key=duration_key)


@subscribe("server.deleted")
def _server_deleted(cloud: Cloud, server: Doc, **_: Any) -> None:
    """A deleted server stops being a target."""
    for lb in cloud.store.all(KIND):
        kept = [t for t in lb["targets"] if not (t["type"] == "server" and t["server"]["id"] == server["id"])]
        if len(kept) != len(lb["targets"]):
            lb["targets"] = kept
            cloud.store.put(KIND, lb)


@subscribe("network.deleted")
def _network_deleted(cloud: Cloud, network: Doc, **_: Any) -> None:
    for lb in cloud.store.all(KIND):
        kept = [e for e in lb.get("private_net") or [] if e["network"] != network["id"]]
        if len(kept) != len(lb.get("private_net") or []):
            lb["private_net"] = kept
            cloud.store.put(KIND, lb)
            machines_follow(cloud, lb)  # its NIC on the network goes, and targets through it



# -- the real load balancer (--hosts nspawn) ---------------------------------------------------
def _service_spec(s: Doc) -> Service:
    hc, http = s["health_check"], s.get("http") or {}
    hch = hc.get("http") or {}
    health = HealthCheck(hc["protocol"], int(hc["port"]), int(hc["interval"]), int(hc["timeout"]),
                         int(hc["retries"]), hch.get("path") or "/", hch.get("domain"),
                         tuple(hch.get("status_codes") or ()), hch.get("response") or "", bool(hch.get("tls")))
    return Service(s["protocol"], int(s["listen_port"]), int(s["destination_port"]), health,
                   bool(s.get("proxyprotocol")), bool(http.get("sticky_sessions")),
                   http.get("cookie_name") or "HCLBSTICKY", int(http.get("cookie_lifetime") or 300),
                   int(http.get("timeout_idle") or 50), bool(http.get("redirect_http")))


def lb_spec(cloud: Cloud, lb: Doc) -> LbSpec:
    """What the machine side makes of a load balancer: its addresses, services with their
    health checks, and the target addresses as of now (label selectors resolved)."""
    nics = []
    for entry in lb.get("private_net") or []:
        net = cloud.store.get("network", entry["network"])
        if net is not None:
            nics.append(LbNic(int(net["id"]), str(net["ip_range"]), str(entry["ip"])))
    pn = lb["public_net"]
    enabled = bool(pn.get("enabled"))
    return LbSpec(int(lb["id"]), lb["algorithm"]["type"], pn["ipv4"]["ip"] if enabled else None,
                  pn["ipv6"]["ip"] if enabled else None, tuple(nics), tuple(_service_spec(s) for s in lb["services"]),
                  tuple(Target(name, ip) for name, ip in target_addresses(cloud, lb)))


def machines_follow(cloud: Cloud, lb: Doc, actions: list[Doc] | tuple[Doc, ...] = ()) -> None:
    """The load balancer's proxy follows its document (created, services, targets, networks,
    algorithm, public interface); ``actions`` end when it does."""
    if cloud.machines.real and cloud.store.get(KIND, lb["id"]) is not None:
        tie(cloud, actions, cloud.machines.set_load_balancer(lb_spec(cloud, lb)))


def all_follow(cloud: Cloud) -> None:
    """Servers changed (created, deleted, labels, networks, addresses): every load balancer's
    targets are resolved again; the machine side changes nothing where nothing changed."""
    if cloud.machines.real:
        for lb in cloud.store.all(KIND):
            machines_follow(cloud, lb)


@subscribe("server.created")
@subscribe("server.deleted")
@subscribe("server.labels_changed")
@subscribe("server.network_changed")
@subscribe("server.public_net_changed")
def _targets_changed(cloud: Cloud, server: Doc, **_: Any) -> None:
    all_follow(cloud)


# -- routes ---------------------------------------------------------------------------------
def _get(req: Request) -> Doc:
    return req.cloud.get(KIND, req.id(), WHAT)


def _locked_get(req: Request) -> Doc:
    lb = _get(req)
    req.cloud.ensure_unlocked(KIND, lb["id"])
    return lb


@route("GET", "/load_balancers")
def list_load_balancers(req: Request) -> Reply:
    items = sort_items(req, filter_common(req, req.cloud.store.all(KIND)), ("id", "name", "created"))
    return page(req, "load_balancers", [render(req.cloud, lb) for lb in items])


@route("POST", "/load_balancers")
def create_load_balancer(req: Request) -> Reply:
    cloud = req.cloud
    body = Body(req.body)
    name = _name(body, required=True)
    type_ref = body.id_or_name("load_balancer_type", required=True)
    algo = body.object("algorithm")
    algorithm = "round_robin"
    if algo is not None:
        algorithm = algo.string("type", required=True, choices=ALGORITHMS) or algorithm
        body.merge(algo)
    location_ref = body.id_or_name("location")
    zone_ref = body.string("network_zone")
    network_id = body.integer("network")
    public_interface = body.boolean("public_interface", default=True)
    labels = body.labels()
    if body.has("public_net"):
        # Hetzner added existing Primary IPs for load balancers on 2026-10-05 (after the spec
        # copy); refuse it loudly rather than silently allocate other addresses
        raise errors.ApiError("unsupported_error", "localcloud does not assign existing Primary IPs to "
                                                   "load balancers: omit public_net")
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
    if location_ref is not None and zone_ref is not None:
        body.problem("location", "only one of location or network_zone may be given")
    elif location_ref is None and zone_ref is None:
        body.problem("location", "one of location or network_zone is required")
    ltype = cloud.catalog.load_balancer_type(type_ref) if type_ref is not None else None
    if type_ref is not None and ltype is None:
        body.problem("load_balancer_type", f"load balancer type {type_ref} not found")
    location = None
    if location_ref is not None:
        location = cloud.catalog.location(location_ref)
        if location is None:
            body.problem("location", f"location {location_ref} not found")
    elif zone_ref is not None:
        location = next((loc for loc in cloud.catalog.locations if loc["network_zone"] == zone_ref), None)
        if location is None:
            body.problem("network_zone", f"network zone {zone_ref} not found")
    body.check()
    assert ltype is not None and location is not None

    cloud.ensure_limit("load_balancers", KIND)
    cloud.ensure_unique_name(KIND, name)
    private_net: list[Doc] = []
    if network_id is not None:
        network = _network(cloud, network_id)
        private_net.append({"network": network_id,
                            "ip": pick_private_ip(cloud, network, location["network_zone"])})
    elif not public_interface:
        raise errors.ApiError("load_balancer_not_attached_to_network",
                              "a load balancer without public interface must be attached to a network")
    v4, v6 = _allocate_public(cloud)
    ident = cloud.store.next_id(KIND)
    lb: Doc = {
        "id": ident, "name": name, "_location": location["name"], "_type": ltype["id"],
        "public_net": {"enabled": bool(public_interface),
                       "ipv4": {"ip": v4, "dns_ptr": default_dns_ptr(v4)},
                       "ipv6": {"ip": v6, "dns_ptr": default_dns_ptr(v6)}},
        "private_net": private_net, "protection": {"delete": False}, "labels": labels or {},
        "created": now_iso(), "services": [], "targets": [], "algorithm": {"type": algorithm},
        "outgoing_traffic": None, "ingoing_traffic": None,
    }
    for svc in services:
        check_new_service(cloud, lb, svc)
        lb["services"].append(svc)
    for i, target in enumerate(targets):
        check_target(cloud, lb, target, f"targets[{i}]")
        lb["targets"].append(target)
    cloud.store.put(KIND, lb)
    resources: list[tuple[str, int]] = [(KIND, ident)]
    action = cloud.engine.start("create_load_balancer", resources, finish="load_balancer.changed",
                                params={"load_balancer": ident, "before": {}})
    machines_follow(cloud, lb, [action])
    return Reply(201, {"load_balancer": render(cloud, lb), "action": cloud.action(action)})


@route("GET", "/load_balancers/{id}")
def get_load_balancer(req: Request) -> Reply:
    return Reply(200, {"load_balancer": render(req.cloud, _get(req))})


@route("PUT", "/load_balancers/{id}")
def update_load_balancer(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
    body = Body(req.body)
    name = _name(body, required=False)
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
    lb = _get(req)
    cloud.ensure_deletable(KIND, lb)
    cloud.ensure_unlocked(KIND, lb["id"])
    cloud.store.delete(KIND, lb["id"])
    action = cloud.engine.start("delete_load_balancer", [(KIND, lb["id"])])
    tie(cloud, [action], cloud.machines.delete_load_balancer(int(lb["id"])))
    return cloud.action_reply(action, status=200)


@route("POST", "/load_balancers/{id}/actions/add_service")
def add_service(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
    svc, body = read_service(cloud, req.body)
    body.check()
    cloud.ensure_unlocked(KIND, lb["id"])
    check_new_service(cloud, lb, svc)
    action = _change(cloud, lb, "add_service", ("services",))
    lb["services"].append(svc)
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/update_service")
def update_service(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
    probe = Body(req.body)
    port = _port(probe, "listen_port", required=True)
    probe.check()
    index = next((i for i, s in enumerate(lb["services"]) if s["listen_port"] == port), None)
    if index is None:
        raise errors.invalid_field("listen_port", f"no service listens on port {port}")
    svc, body = read_service(cloud, req.body, current=lb["services"][index])
    body.check()
    cloud.ensure_unlocked(KIND, lb["id"])
    action = _change(cloud, lb, "update_service", ("services",))
    lb["services"][index] = svc
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/delete_service")
def delete_service(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
    body = Body(req.body)
    port = _port(body, "listen_port", required=True)
    body.check()
    if not any(s["listen_port"] == port for s in lb["services"]):
        raise errors.invalid_field("listen_port", f"no service listens on port {port}")
    cloud.ensure_unlocked(KIND, lb["id"])
    action = _change(cloud, lb, "delete_service", ("services",))
    lb["services"] = [s for s in lb["services"] if s["listen_port"] != port]
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/add_target")
def add_target(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
    target, body = read_target(req.body)
    body.check()
    cloud.ensure_unlocked(KIND, lb["id"])
    check_target(cloud, lb, target, "")
    action = _change(cloud, lb, "add_target", ("targets",))
    lb["targets"].append(target)
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/remove_target")
def remove_target(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
    target, body = read_target(req.body, removing=True)
    body.check()
    kept = [t for t in lb["targets"] if not _same_target(t, target)]
    if len(kept) == len(lb["targets"]):
        raise errors.invalid_field("type", "no such target on this load balancer")
    cloud.ensure_unlocked(KIND, lb["id"])
    action = _change(cloud, lb, "remove_target", ("targets",))
    lb["targets"] = kept
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/attach_to_network")
def attach_to_network(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
    body = Body(req.body)
    network_id = body.integer("network", required=True)
    ip = body.ip("ip")
    ip_range = body.cidr("ip_range")
    body.check()
    network = _network(cloud, network_id)
    if network_id in lb_networks(cloud, lb):
        raise errors.ApiError("load_balancer_already_attached",
                              f"load balancer {lb['id']} is already attached to network {network_id}")
    cloud.ensure_unlocked(KIND, lb["id"])
    address = pick_private_ip(cloud, network, lb_location(cloud, lb)["network_zone"], ip, ip_range)
    action = _change(cloud, lb, "attach_to_network", ("private_net",), extra=[("network", network_id)],
                     duration_key="load_balancer_attach_to_network")
    lb["private_net"] = [e for e in lb["private_net"] if e["network"] != network_id]
    lb["private_net"].append({"network": network_id, "ip": address})
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/detach_from_network")
def detach_from_network(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
    body = Body(req.body)
    network_id = body.integer("network", required=True)
    body.check()
    _network(cloud, network_id)
    if network_id not in lb_networks(cloud, lb):
        raise errors.ApiError("load_balancer_not_attached_to_network",
                              f"load balancer {lb['id']} is not attached to network {network_id}")
    if not lb["public_net"]["enabled"] and len(lb_networks(cloud, lb)) == 1:
        raise errors.ApiError("load_balancer_public_interface_disabled",
                              "the public interface is disabled: the last network cannot be detached")
    cloud.ensure_unlocked(KIND, lb["id"])
    action = _change(cloud, lb, "detach_from_network", ("private_net",), extra=[("network", network_id)])
    lb["private_net"] = [e for e in lb["private_net"] if e["network"] != network_id]
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/change_type")
def change_type(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
    body = Body(req.body)
    ref = body.id_or_name("load_balancer_type", required=True)
    body.check()
    new_type = cloud.catalog.load_balancer_type(ref)
    if new_type is None:
        raise errors.invalid_field("load_balancer_type", f"load balancer type {ref} not found")
    if len(lb["services"]) > new_type["max_services"] or len(lb["targets"]) > new_type["max_targets"]:
        raise errors.ApiError("invalid_load_balancer_type",
                              f"load balancer type {new_type['name']} allows {new_type['max_services']} services "
                              f"and {new_type['max_targets']} targets; this load balancer has "
                              f"{len(lb['services'])} and {len(lb['targets'])}")
    cloud.ensure_unlocked(KIND, lb["id"])
    action = _change(cloud, lb, "change_load_balancer_type", ("_type",))
    lb["_type"] = new_type["id"]
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/change_algorithm")
def change_algorithm(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
    body = Body(req.body)
    algorithm = body.string("type", required=True, choices=ALGORITHMS)
    body.check()
    cloud.ensure_unlocked(KIND, lb["id"])
    action = _change(cloud, lb, "change_algorithm", ("algorithm",))
    lb["algorithm"] = {"type": algorithm}
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/change_dns_ptr")
def change_dns_ptr(req: Request) -> Reply:
    cloud = req.cloud
    lb = _get(req)
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
    action = _change(cloud, lb, "change_dns_ptr", ("public_net",))
    dns_ptr = body.data.get("dns_ptr")
    lb["public_net"][family]["dns_ptr"] = dns_ptr if dns_ptr is not None else default_dns_ptr(
        lb["public_net"][family]["ip"])
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/enable_public_interface")
def enable_public_interface(req: Request) -> Reply:
    cloud = req.cloud
    lb = _locked_get(req)
    action = _change(cloud, lb, "enable_public_interface", ("public_net",))
    lb["public_net"]["enabled"] = True
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/disable_public_interface")
def disable_public_interface(req: Request) -> Reply:
    cloud = req.cloud
    lb = _locked_get(req)
    if not lb_networks(cloud, lb):
        raise errors.ApiError("load_balancer_not_attached_to_network",
                              "a load balancer must be attached to a network to disable its public interface")
    if any(t["type"] in ("server", "label_selector") and not t.get("use_private_ip") for t in lb["targets"]):
        raise errors.ApiError("targets_without_use_private_ip",
                              "the load balancer has targets that use public IPs")
    action = _change(cloud, lb, "disable_public_interface", ("public_net",))
    lb["public_net"]["enabled"] = False
    cloud.store.put(KIND, lb)
    machines_follow(cloud, lb, [action])
    return cloud.action_reply(action)


@route("POST", "/load_balancers/{id}/actions/change_protection")
def change_load_balancer_protection(req: Request) -> Reply:
    return change_protection(req, KIND, ("delete",))


register_action_routes("load_balancers", KIND)
