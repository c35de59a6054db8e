"""A firewall's document: constants, where it applies (servers directly or by label
selector, and which firewalls reach a server), and how it renders."""

from __future__ import annotations

import re

from localcloud import errors
from localcloud.api.common import public
from localcloud.cloud import Cloud
from localcloud.labels import Selector, parse_selector
from localcloud.router import Request
from localcloud.store import Doc

KIND = "firewall"
NAME_MAX = 128
MAX_RULES = 50
MAX_IPS = 100
MAX_FIREWALLS_PER_SERVER = 5
DESCRIPTION_MAX = 255
DIRECTIONS = ("in", "out")
PROTOCOLS = ("tcp", "udp", "icmp", "esp", "gre")
PORT_PROTOCOLS = ("tcp", "udp")
_PORT = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")


# -- what applies where ----------------------------------------------------------------------
def _selector(text: str) -> Selector | None:
    try:
        return parse_selector(text)
    except errors.ApiError:
        return None


def selector_server_ids(cloud: Cloud, text: str) -> list[int]:
    """Servers whose current labels match a label selector."""
    selector = _selector(text)
    if selector is None:
        return []
    return [s["id"] for s in cloud.store.all("server") if selector.matches(s.get("labels") or {})]


def _direct_ids(firewall: Doc) -> set[int]:
    return {e["server"]["id"] for e in firewall["applied_to"] if e["type"] == "server"}


def _selected_by(cloud: Cloud, firewall: Doc, server: Doc) -> bool:
    """True when one of the firewall's label selectors matches the server."""
    labels = server.get("labels") or {}
    for entry in firewall["applied_to"]:
        if entry["type"] == "label_selector":
            selector = _selector(entry["label_selector"]["selector"])
            if selector is not None and selector.matches(labels):
                return True
    return False


def applies_to(cloud: Cloud, firewall: Doc, server: Doc) -> bool:
    return server["id"] in _direct_ids(firewall) or _selected_by(cloud, firewall, server)


def firewalls_for_server(cloud: Cloud, server: Doc) -> list[int]:
    """Ids of the firewalls applied to a server, directly or by label selector."""
    return [fw["id"] for fw in cloud.store.all(KIND) if applies_to(cloud, fw, server)]


def affected_server_ids(cloud: Cloud, firewall: Doc) -> list[int]:
    """Every server the firewall currently applies to."""
    ids = set(_direct_ids(firewall))
    for entry in firewall["applied_to"]:
        if entry["type"] == "label_selector":
            ids.update(selector_server_ids(cloud, entry["label_selector"]["selector"]))
    return sorted(ids)


def _has_public_interface(server: Doc) -> bool:
    net = server.get("public_net") or {}
    return any(net.get(k) is not None for k in ("_ipv4", "_ipv6", "ipv4", "ipv6"))


def _ensure_room(cloud: Cloud, firewall: Doc, server: Doc) -> None:
    others = [f for f in firewalls_for_server(cloud, server) if f != firewall["id"]]
    if len(others) >= MAX_FIREWALLS_PER_SERVER:
        raise errors.resource_limit_exceeded(
            "firewalls_per_server",
            f"server {server['id']} already has the maximum of {MAX_FIREWALLS_PER_SERVER} firewalls")


# -- rendering ------------------------------------------------------------------------------
def _server_entry(server_id: int) -> Doc:
    return {"type": "server", "server": {"id": server_id}}


def _selector_entry(text: str) -> Doc:
    return {"type": "label_selector", "label_selector": {"selector": text}}


def render(cloud: Cloud, doc: Doc) -> Doc:
    out = public(doc)
    out["rules"] = [dict(r) for r in doc["rules"]]
    applied = []
    for entry in doc["applied_to"]:
        if entry["type"] == "server":
            applied.append(_server_entry(entry["server"]["id"]))
        else:
            text = entry["label_selector"]["selector"]
            item = _selector_entry(text)
            item["applied_to_resources"] = [_server_entry(sid) for sid in selector_server_ids(cloud, text)]
            applied.append(item)
    out["applied_to"] = applied
    return out


def _firewall(req: Request) -> Doc:
    return req.cloud.get(KIND, req.id(), "firewall")
