"""A server's document: constants, look-ups and guards on it, its private networks, and how
it renders (everything a server is linked to that another family owns is computed here)."""

from __future__ import annotations

import ipaddress
import re
import string
from datetime import UTC, datetime
from typing import Any

import localcloud.api.firewalls as firewalls
import localcloud.api.images as images
import localcloud.api.ipam as ipam
import localcloud.api.placement_groups as placement_groups
import localcloud.api.primary_ips as primary_ips
from localcloud import errors
from localcloud.cloud import Cloud
from localcloud.labels import parse_selector
from localcloud.router import Request
from localcloud.store import Doc

KIND = "server"
STATUSES = ("running", "initializing", "starting", "stopping", "off", "deleting", "migrating", "rebuilding",
            "unknown")
BACKUP_WINDOW = "22-02"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_PASSWORD_CHARS = string.ascii_letters + string.digits


# -- helpers ------------------------------------------------------------------------------
def new_password(cloud: Cloud, length: int = 20) -> str:
    return "".join(cloud.rng.choice(_PASSWORD_CHARS) for _ in range(length))


def new_mac(cloud: Cloud) -> str:
    return "86:00:00:" + ":".join(f"{cloud.rng.randrange(256):02x}" for _ in range(3))


def location_of(cloud: Cloud, server: Doc) -> Doc:
    dc = cloud.products.datacenter(server["_datacenter"])
    assert dc is not None
    loc = cloud.products.location(dc["location"]["name"])
    assert loc is not None
    return loc


def server_type_of(cloud: Cloud, server: Doc) -> Doc:
    st = cloud.products.server_type(server["_server_type"])
    assert st is not None
    return st


def location_name(cloud: Cloud, ref: Any) -> str | None:
    """A location stored by another family as a name or an id."""
    if ref is None:
        return None
    loc = cloud.products.location(ref)
    return str(loc["name"]) if loc else str(ref)


def ensure_hostname(name: str | None) -> None:
    if name is not None and not _HOSTNAME.fullmatch(name):
        raise errors.invalid_field("name", "must be a valid hostname (RFC 1123: letters, digits, '-' and '.')")


def ensure_orderable(cloud: Cloud, st: Doc, location: str, field: str = "server_type",
                      code: str = "invalid_input") -> None:
    """Why the type cannot be ordered here, as the API reports it (invalid_input for
    deprecated or unsupported, resource_unavailable for sold out or an injected fault)."""
    def invalid(message: str) -> errors.ApiError:
        if code == "invalid_input":
            return errors.invalid_field(field, message)
        return errors.ApiError(code, message, status=422)

    if _retired(st):
        raise invalid(f"server type {st['name']} is deprecated and can no longer be ordered")
    entry = next((loc for loc in st.get("locations", []) if loc["name"] == location), None)
    if entry is None:
        raise invalid(f"unsupported location for server type {st['name']} ({location})")
    if not entry.get("available", True) or cloud.faults.is_unavailable("server_type", st["name"], location):
        raise errors.resource_unavailable(f"server type {st['name']} is currently not available in {location}")


def _retired(st: Doc) -> bool:
    """Deprecated and past ``unavailable_after``: listed, but no longer orderable."""
    after = (st.get("deprecation") or {}).get("unavailable_after")
    if not after:
        return False
    return datetime.fromisoformat(str(after).replace("Z", "+00:00")) <= datetime.now(UTC)


def pick_location(cloud: Cloud, st: Doc) -> str:
    for loc in cloud.products.locations:
        try:
            ensure_orderable(cloud, st, loc["name"])
        except errors.ApiError:
            continue
        return str(loc["name"])
    raise errors.resource_unavailable(f"server type {st['name']} is currently not available in any location")


def network_zone(cloud: Cloud, location: str) -> str:
    loc = cloud.products.location(location)
    return str(loc["network_zone"]) if loc else ""


def zone_network(network: Doc, zone: str, ip_range: str | None = None) -> Doc:
    """The network restricted to the subnets a server in ``zone`` can use (for allocate_ip)."""
    subnets = [s for s in network.get("subnets", [])
               if s.get("network_zone", zone) == zone and (ip_range is None or s.get("ip_range") == ip_range)]
    return {**network, "subnets": subnets}


def attach_network(cloud: Cloud, server: Doc, network: Doc, ip: str | None, alias_ips: list[str],
            ip_range: str | None) -> Doc:
    """Pick the addresses and record the attachment on the server (not yet stored)."""
    zone = network_zone(cloud, location_of(cloud, server)["name"])
    if ip_range is not None and not any(s.get("ip_range") == ip_range for s in network.get("subnets", [])):
        raise errors.invalid_field("ip_range", f"{ip_range} is not a subnet of network {network['id']}")
    usable = zone_network(network, zone, ip_range)
    if not any(s.get("type") in ("cloud", "server") for s in usable["subnets"]):
        raise errors.ApiError("no_subnet_available",
                              f"network {network['id']} has no subnet in network zone {zone}")
    for entry in server.get("private_net", []):
        other = cloud.store.get("network", entry["network"])
        if other is not None and ipaddress.ip_network(other["ip_range"]).overlaps(
                ipaddress.ip_network(network["ip_range"])):
            raise errors.ApiError("networks_overlap", f"network {network['id']} overlaps network {other['id']}"
                                                      f" the server is attached to")
    address = ipam.allocate_ip(cloud, usable, ip, "ip")
    aliases = allocate_aliases(cloud, usable, alias_ips, {address})
    entry = {"network": network["id"], "ip": address, "alias_ips": aliases, "mac_address": new_mac(cloud)}
    server.setdefault("private_net", []).append(entry)
    return entry


def allocate_aliases(cloud: Cloud, network: Doc, alias_ips: list[Any], taken: set[str]) -> list[str]:
    out: list[str] = []
    for alias in alias_ips:
        if not isinstance(alias, str):
            raise errors.invalid_field("alias_ips", "must be IP address strings")
        if alias in taken or alias in out:
            raise errors.ApiError("ip_not_available", f"IP {alias} is already in use")
        out.append(ipam.allocate_ip(cloud, network, alias, "alias_ips"))
    return out


def _load_balancer_ids(cloud: Cloud, server: Doc) -> list[int]:
    out: list[int] = []
    for lb in cloud.store.all("load_balancer"):
        for target in lb.get("targets") or []:
            if target.get("type") == "server" and (target.get("server") or {}).get("id") == server["id"]:
                out.append(lb["id"])
                break
            if target.get("type") == "label_selector":
                text = (target.get("label_selector") or {}).get("selector") or ""
                try:
                    if parse_selector(text).matches(server.get("labels") or {}):
                        out.append(lb["id"])
                        break
                except errors.ApiError:
                    continue
    return out


def ensure_off(server: Doc) -> None:
    if server["status"] != "off":
        raise errors.ApiError("server_not_stopped", f"server {server['id']} must be powered off (status"
                                                    f" {server['status']})", status=422)


# -- rendering ----------------------------------------------------------------------------
def _public_net(cloud: Cloud, server: Doc) -> Doc:
    pn = server.get("public_net") or {}
    ipv4 = ipv6 = None
    if pn.get("_ipv4") is not None and (p4 := cloud.store.get("primary_ip", pn["_ipv4"])) is not None:
        ptr = next((e["dns_ptr"] for e in p4["dns_ptr"] if e["ip"] == p4["ip"]),
                   primary_ips.default_dns_ptr(p4["ip"]))
        ipv4 = {"id": p4["id"], "ip": p4["ip"], "blocked": p4["blocked"], "dns_ptr": ptr}
    if pn.get("_ipv6") is not None and (p6 := cloud.store.get("primary_ip", pn["_ipv6"])) is not None:
        ipv6 = {"id": p6["id"], "ip": p6["ip"], "blocked": p6["blocked"],
                "dns_ptr": [dict(e) for e in p6["dns_ptr"]]}
    return {"ipv4": ipv4, "ipv6": ipv6, "floating_ips": [],
            "firewalls": [{"id": i, "status": "applied"} for i in firewalls.firewalls_for_server(cloud, server)]}


def _placement_group(cloud: Cloud, group_id: int | None) -> Doc | None:
    group = cloud.store.get("placement_group", group_id) if group_id is not None else None
    return placement_groups.render(cloud, group) if group is not None else None


def render(cloud: Cloud, doc: Doc) -> Doc:
    st = server_type_of(cloud, doc)
    loc = location_of(cloud, doc)
    dc = cloud.products.datacenter(doc["_datacenter"])
    assert dc is not None
    price = next((p for p in st.get("prices", []) if p["location"] == loc["name"]), None)
    return {
        "id": doc["id"], "name": doc["name"], "status": doc["status"], "created": doc["created"],
        "public_net": _public_net(cloud, doc),
        "private_net": [{"network": e["network"], "ip": e["ip"], "alias_ips": list(e["alias_ips"]),
                         "mac_address": e["mac_address"]} for e in doc.get("private_net", [])],
        "server_type": dict(st), "location": dict(loc), "datacenter": cloud.products.render_datacenter(dc),
        "image": images.get_image(cloud, doc.get("_image")), "iso": None,
        "rescue_enabled": doc["rescue_enabled"], "locked": cloud.engine.is_locked(KIND, doc["id"]),
        "backup_window": doc["backup_window"], "outgoing_traffic": 0, "ingoing_traffic": 0,
        "included_traffic": price["included_traffic"] if price else None,
        "protection": dict(doc["protection"]), "labels": dict(doc["labels"]),
        "volumes": [v["id"] for v in cloud.store.all("volume") if v.get("server") == doc["id"]],
        "load_balancers": _load_balancer_ids(cloud, doc),
        "primary_disk_size": doc["primary_disk_size"],
        "placement_group": _placement_group(cloud, doc.get("placement_group")),
    }



def server_of(req: Request) -> Doc:
    return req.cloud.get(KIND, req.id(), "server")
