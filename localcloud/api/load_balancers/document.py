"""A load balancer's document: constants, look-ups into other families' documents, target
health, how it renders, and its addresses."""

from __future__ import annotations

import copy
import ipaddress
import re

import localcloud.api.ipam as ipam
import localcloud.api.primary_ips as primary_ips
from localcloud import errors
from localcloud.api.common import public
from localcloud.cloud import Cloud
from localcloud.labels import parse_selector
from localcloud.router import Request
from localcloud.store import Doc

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
    found = cloud.products.load_balancer_type(lb["_type"])
    if found is None:
        raise errors.ApiError("server_error", f"unknown load balancer type {lb['_type']}")
    return found


def lb_location(cloud: Cloud, lb: Doc) -> Doc:
    found = cloud.products.location(lb["_location"])
    if found is None:
        raise errors.ApiError("server_error", f"unknown location {lb['_location']}")
    return found


# -- health and rendering -------------------------------------------------------------------
def target_health(cloud: Cloud, lb: Doc, server: Doc) -> str:
    """Health of a server target without real hosts: healthy iff the server runs."""
    return "healthy" if server.get("status") == "running" else "unhealthy"


def health_status(lb: Doc, status: str) -> list[Doc]:
    return [{"listen_port": s["listen_port"], "status": status} for s in lb["services"]]


def target_name(ip: str, server_id: int | None = None) -> str:
    """A target address's name in the real load balancer (HAProxy's server and stats rows).
    The address is part of it: one server can be a target by its public and its private IP."""
    return f"server-{server_id}-{ip}" if server_id is not None else f"ip-{ip}"


def _target_health(cloud: Cloud, lb: Doc, name: str, without_hosts: str) -> list[Doc]:
    """Per service: the real health checks' verdict with real hosts, else ``without_hosts``."""
    polled = cloud.machines.load_balancer_health(int(lb["id"]))
    if polled is None:
        return health_status(lb, without_hosts)
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



# -- addresses ------------------------------------------------------------------------------
def allocate_public(cloud: Cloud) -> tuple[str, str]:
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


def network_of(cloud: Cloud, ident: int, field: str = "network") -> Doc:
    network = cloud.store.get("network", ident)
    if network is None:
        raise errors.invalid_field(field, f"network {ident} not found")
    return network



def lb_of(req: Request) -> Doc:
    return req.cloud.get(KIND, req.id(), WHAT)


def locked_lb_of(req: Request) -> Doc:
    lb = lb_of(req)
    req.cloud.ensure_unlocked(KIND, lb["id"])
    return lb
