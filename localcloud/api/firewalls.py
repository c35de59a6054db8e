"""Firewalls: rules, and where they apply (servers directly or by label selector).

Only the firewall records where it applies (``applied_to``); the servers a label selector
reaches are computed at render time from the servers' current labels, so they stay right
as servers come, go and change labels. The servers family asks
:func:`firewalls_for_server` for a server's firewalls and calls :func:`apply_to_server`
when a server is created with ``firewalls``.

Decisions where the spec leaves room:
- Changes take effect in the reply; the ``apply_firewall`` / ``remove_firewall`` /
  ``set_firewall_rules`` actions only report them, and undo them if they fail (injected
  fault). With real hosts they end once the filters on this machine follow
  (:func:`machines_follow`, ``hosts/firewall.py``).
- Removing a server that a label selector of the firewall matches answers
  ``firewall_managed_by_label_selector`` even if it was also applied directly (the direct
  entry cannot be dropped while the selector holds it); removing what is not applied
  answers ``firewall_already_removed``.
- A server may be reached by at most 5 firewalls (``resource_limit_exceeded``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from localcloud import errors
from localcloud.actions import on_complete, on_failure
from localcloud.api.common import public, register_action_routes, update_name_labels
from localcloud.api.machine_specs import public_addresses, tie
from localcloud.cloud import Cloud, now_iso
from localcloud.events import subscribe
from localcloud.labels import Selector, parse_selector
from localcloud.listing import filter_common, page, sort_items
from localcloud.machines import Guarded, Rule
from localcloud.router import Reply, Request, route
from localcloud.store import Doc, Store
from localcloud.validate import Body

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


def apply_to_server(cloud: Cloud, firewall: Doc, server: Doc) -> None:
    """Record a direct application (server create with ``firewalls``); the caller reports the action."""
    if server["id"] in _direct_ids(firewall):
        raise errors.ApiError("firewall_already_applied",
                              f"firewall {firewall['id']} is already applied to server {server['id']}")
    if not _has_public_interface(server):
        raise errors.ApiError("private_net_only_server",
                              f"server {server['id']} has no public interface for firewall {firewall['id']}")
    _ensure_room(cloud, firewall, server)
    firewall["applied_to"].append(_server_entry(server["id"]))
    cloud.store.put(KIND, firewall)


@subscribe("server.deleted")
def _server_deleted(cloud: Cloud, server: Doc, **_: Any) -> None:
    """A deleted server leaves every firewall it was applied to directly."""
    for firewall in cloud.store.all(KIND):
        if server["id"] in _direct_ids(firewall):
            firewall["applied_to"] = [e for e in firewall["applied_to"]
                                      if not (e["type"] == "server" and e["server"]["id"] == server["id"])]
            cloud.store.put(KIND, firewall)



# -- the filters on this machine (--hosts nspawn) ----------------------------------------------
def guarded_servers(cloud: Cloud) -> list[Guarded]:
    """Every server with a public address and at least one firewall, with all their rules."""
    out = []
    for server in cloud.store.all("server"):
        ipv4, ipv6 = public_addresses(cloud, server)
        applied = firewalls_for_server(cloud, server)
        if not applied or (ipv4 is None and ipv6 is None):
            continue
        rules = []
        for fid in applied:
            for r in (cloud.store.get(KIND, fid) or {}).get("rules", []):
                ips = r["source_ips"] if r["direction"] == "in" else r["destination_ips"]
                rules.append(Rule(r["direction"], r["protocol"], r.get("port"), tuple(ips)))
        out.append(Guarded(int(server["id"]), ipv4, ipv6, tuple(rules)))
    return out


def machines_follow(cloud: Cloud, actions: list[Doc] | tuple[Doc, ...] = ()) -> None:
    """Rules or where they apply changed (or a server, its labels or addresses): the filters on
    this machine follow; ``actions`` (apply_firewall, set_firewall_rules, ...) end when they do."""
    if cloud.machines.real:
        tie(cloud, actions, cloud.machines.set_firewalls(guarded_servers(cloud)))


@subscribe("server.created")
@subscribe("server.deleted")
@subscribe("server.labels_changed")
@subscribe("server.public_net_changed")
def _server_changed(cloud: Cloud, server: Doc, **_: Any) -> None:
    machines_follow(cloud)


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


# -- validation -----------------------------------------------------------------------------

def _read_cidrs(body: Body, key: str) -> list[str] | None:
    """A list of CIDR blocks (networks or single hosts), IPv6 in canonical form (RFC 5952)."""
    values = body.array(key, default=[])
    if values is None:
        return None
    if len(values) > MAX_IPS:
        body.problem(key, f"at most {MAX_IPS} CIDR blocks are allowed")
        return None
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or "/" not in value:
            body.problem(key, f"{value!r} is not a CIDR block")
            continue
        try:
            out.append(str(ipaddress.ip_network(value, strict=True)))
        except ValueError:
            body.problem(key, f"{value!r} is not a valid CIDR block (host bits must be zero)")
    return out


def _check_port(body: Body, port: str) -> None:
    if port == "any":
        return
    match = _PORT.fullmatch(port)
    if not match:
        body.problem("port", f"{port!r} must be a port, a range like 1024-5000, or any")
        return
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not (1 <= low <= 65535 and 1 <= high <= 65535):
        body.problem("port", f"{port!r}: ports are 1-65535")
    elif high < low:
        body.problem("port", f"{port!r}: the range must not end below its start")


def _read_rule(data: Any, prefix: str) -> tuple[Body, Doc | None]:
    body = Body(data, prefix=prefix)
    direction = body.string("direction", required=True, choices=DIRECTIONS)
    protocol = body.string("protocol", required=True, choices=PROTOCOLS)
    port = body.string("port")
    description = body.string("description", max_len=DESCRIPTION_MAX, nullable=True)
    source_ips = _read_cidrs(body, "source_ips")
    destination_ips = _read_cidrs(body, "destination_ips")
    if protocol in PORT_PROTOCOLS:
        if port is None:
            body.problem("port", f"is required for protocol {protocol}")
        else:
            _check_port(body, port)
    elif protocol is not None and port is not None:
        body.problem("port", f"is only allowed for protocols tcp and udp, not {protocol}")
    if direction == "in":
        if source_ips is not None and not source_ips and not body.problems.get(prefix + "source_ips"):
            body.problem("source_ips", "at least one CIDR block is required for direction in")
        if destination_ips:
            body.problem("destination_ips", "must be empty for direction in (use source_ips)")
    elif direction == "out":
        if destination_ips is not None and not destination_ips \
                and not body.problems.get(prefix + "destination_ips"):
            body.problem("destination_ips", "at least one CIDR block is required for direction out")
        if source_ips:
            body.problem("source_ips", "must be empty for direction out (use destination_ips)")
    if body.problems:
        return body, None
    return body, {"direction": direction, "protocol": protocol,
                  "port": port if protocol in PORT_PROTOCOLS else None,
                  "source_ips": source_ips or [], "destination_ips": destination_ips or [],
                  "description": description}


def _read_rules(body: Body, required: bool) -> list[Doc] | None:
    raw = body.array("rules", required=required)
    if raw is None:
        return None
    if len(raw) > MAX_RULES:
        body.problem("rules", f"a firewall holds at most {MAX_RULES} rules, got {len(raw)}")
        return None
    rules: list[Doc] = []
    for i, item in enumerate(raw):
        rule_body, rule = _read_rule(item, f"rules[{i}].")
        body.merge(rule_body)
        if rule is not None:
            rules.append(rule)
    return rules


def _read_resources(body: Body, key: str, required: bool) -> list[Doc] | None:
    """Syntax of apply_to / remove_from: server {id} or label_selector {selector}."""
    raw = body.array(key, required=required)
    if raw is None:
        return None
    entries: list[Doc] = []
    for i, item in enumerate(raw):
        entry_body = Body(item, prefix=f"{key}[{i}].")
        rtype = entry_body.string("type", required=True, choices=("server", "label_selector"))
        if rtype == "server":
            server = entry_body.object("server", required=True)
            if server is not None:
                sid = server.integer("id", required=True, minimum=1)
                entry_body.merge(server)
                if sid is not None:
                    entries.append(_server_entry(sid))
        elif rtype == "label_selector":
            sel = entry_body.object("label_selector", required=True)
            if sel is not None:
                text = sel.string("selector", required=True)
                entry_body.merge(sel)
                if text is not None:
                    try:
                        parse_selector(text)
                    except errors.ApiError as exc:
                        message = exc.details["fields"][0]["messages"][0] if exc.details else exc.message
                        entry_body.problem("label_selector.selector", message)
                    else:
                        entries.append(_selector_entry(text))
        body.merge(entry_body)
    return entries


def _resource_not_found(server_id: int, status: int) -> errors.ApiError:
    return errors.ApiError("firewall_resource_not_found", f"server {server_id} not found", status=status)


def _check_apply(cloud: Cloud, firewall: Doc, entries: list[Doc], not_found_status: int) -> None:
    """Every entry must be new and reachable before anything changes."""
    seen_servers: set[int] = set()
    seen_selectors: set[str] = set()
    for entry in entries:
        if entry["type"] == "server":
            sid = entry["server"]["id"]
            server = cloud.store.get("server", sid)
            if server is None:
                raise _resource_not_found(sid, not_found_status)
            if sid in seen_servers:
                raise errors.ApiError("server_already_added", f"server {sid} is given more than once")
            seen_servers.add(sid)
            if sid in _direct_ids(firewall):
                raise errors.ApiError("firewall_already_applied",
                                      f"firewall {firewall['id']} is already applied to server {sid}")
            if not _has_public_interface(server):
                raise errors.ApiError("private_net_only_server", f"server {sid} has no public interface")
            _ensure_room(cloud, firewall, server)
        else:
            text = entry["label_selector"]["selector"]
            if text in seen_selectors or any(e == entry for e in firewall["applied_to"]):
                raise errors.ApiError("firewall_already_applied",
                                      f"firewall {firewall['id']} is already applied to label selector {text}")
            seen_selectors.add(text)
            for sid in selector_server_ids(cloud, text):
                server = cloud.store.get("server", sid)
                if server is not None and not applies_to(cloud, firewall, server):
                    _ensure_room(cloud, firewall, server)


def _entry_resources(cloud: Cloud, firewall: Doc, entry: Doc) -> list[tuple[str, int]]:
    """Action resources for one applied_to entry: the server, or every server a selector reaches."""
    if entry["type"] == "server":
        return [("server", entry["server"]["id"]), (KIND, firewall["id"])]
    servers = selector_server_ids(cloud, entry["label_selector"]["selector"])
    return [(KIND, firewall["id"])] + [("server", sid) for sid in servers]


def _apply(cloud: Cloud, firewall: Doc, entries: list[Doc]) -> list[Doc]:
    actions = []
    for entry in entries:
        firewall["applied_to"].append(entry)
        cloud.store.put(KIND, firewall)
        actions.append(cloud.engine.start("apply_firewall", _entry_resources(cloud, firewall, entry),
                                          finish="firewall.apply", params={"firewall": firewall["id"],
                                                                           "entry": entry}))
    return actions


def _firewall(req: Request) -> Doc:
    return req.cloud.get(KIND, req.id(), "firewall")


def _actions_reply(cloud: Cloud, actions: list[Doc]) -> Reply:
    return Reply(201, {"actions": [cloud.action(a) for a in actions]})


# -- collection ------------------------------------------------------------------------------
@route("GET", "/firewalls")
def list_firewalls(req: Request) -> Reply:
    items = filter_common(req, req.cloud.store.all(KIND))
    return page(req, "firewalls", [render(req.cloud, f) for f in sort_items(req, items, ("id", "name", "created"))])


@route("POST", "/firewalls")
def create_firewall(req: Request) -> Reply:
    cloud = req.cloud
    body = Body(req.body)
    name = body.name("name", required=True, max_len=NAME_MAX)
    labels = body.labels()
    rules = _read_rules(body, required=False)
    entries = _read_resources(body, "apply_to", required=False) or []
    body.check()
    cloud.ensure_limit("firewalls", KIND)
    cloud.ensure_unique_name(KIND, name)
    doc: Doc = {"id": cloud.store.next_id(KIND), "name": name, "labels": labels or {}, "rules": rules or [],
                "applied_to": [], "created": now_iso()}
    _check_apply(cloud, doc, entries, not_found_status=422)
    cloud.store.put(KIND, doc)
    actions = []
    if doc["rules"]:
        actions.append(cloud.engine.start("set_firewall_rules", [(KIND, doc["id"])]))
    actions += _apply(cloud, doc, entries)
    if entries:
        machines_follow(cloud, actions)
    return Reply(201, {"firewall": render(cloud, doc), "actions": [cloud.action(a) for a in actions]})


# -- one firewall ----------------------------------------------------------------------------
@route("GET", "/firewalls/{id}")
def get_firewall(req: Request) -> Reply:
    return Reply(200, {"firewall": render(req.cloud, _firewall(req))})


@route("PUT", "/firewalls/{id}")
def update_firewall(req: Request) -> Reply:
    doc = _firewall(req)
    update_name_labels(req, KIND, doc, name_max=NAME_MAX)
    req.cloud.store.put(KIND, doc)
    return Reply(200, {"firewall": render(req.cloud, doc)})


@route("DELETE", "/firewalls/{id}")
def delete_firewall(req: Request) -> Reply:
    """Refused with resource_in_use while applied to anything (servers or label selectors)."""
    cloud = req.cloud
    doc = _firewall(req)
    if doc["applied_to"]:
        raise errors.ApiError("resource_in_use", f"firewall {doc['id']} is still applied to resources")
    cloud.store.delete(KIND, doc["id"])
    return Reply(204, None)


# -- actions ---------------------------------------------------------------------------------
@route("POST", "/firewalls/{id}/actions/set_rules")
def set_rules(req: Request) -> Reply:
    """Replace the rules: one set_firewall_rules action, and apply_firewall on each affected server."""
    cloud = req.cloud
    doc = _firewall(req)
    body = Body(req.body)
    rules = _read_rules(body, required=True)
    body.check()
    old = doc["rules"]
    doc["rules"] = rules or []
    cloud.store.put(KIND, doc)
    actions = [cloud.engine.start("set_firewall_rules", [(KIND, doc["id"])], finish="firewall.set_rules",
                                  params={"firewall": doc["id"], "old": old, "new": doc["rules"]})]
    for sid in affected_server_ids(cloud, doc):
        actions.append(cloud.engine.start("apply_firewall", [(KIND, doc["id"]), ("server", sid)]))
    machines_follow(cloud, actions)
    return _actions_reply(cloud, actions)


@route("POST", "/firewalls/{id}/actions/apply_to_resources")
def apply_to_resources(req: Request) -> Reply:
    cloud = req.cloud
    doc = _firewall(req)
    body = Body(req.body)
    entries = _read_resources(body, "apply_to", required=True) or []
    body.check()
    _check_apply(cloud, doc, entries, not_found_status=404)
    actions = _apply(cloud, doc, entries)
    machines_follow(cloud, actions)
    return _actions_reply(cloud, actions)


@route("POST", "/firewalls/{id}/actions/remove_from_resources")
def remove_from_resources(req: Request) -> Reply:
    cloud = req.cloud
    doc = _firewall(req)
    body = Body(req.body)
    entries = _read_resources(body, "remove_from", required=True) or []
    body.check()
    for entry in entries:
        if entry["type"] == "server":
            sid = entry["server"]["id"]
            server = cloud.store.get("server", sid)
            if server is None:
                raise _resource_not_found(sid, 404)
            if _selected_by(cloud, doc, server):
                raise errors.ApiError("firewall_managed_by_label_selector",
                                      f"firewall {doc['id']} is applied to server {sid} by a label selector"
                                      " and cannot be removed from it manually")
        if entry not in doc["applied_to"]:
            raise errors.ApiError("firewall_already_removed", f"firewall {doc['id']} is not applied to"
                                                              f" {_describe(entry)}")
    actions = []
    for entry in entries:
        if entry not in doc["applied_to"]:
            continue  # named twice in one request
        resources = _entry_resources(cloud, doc, entry)
        doc["applied_to"] = [e for e in doc["applied_to"] if e != entry]
        cloud.store.put(KIND, doc)
        actions.append(cloud.engine.start("remove_firewall", resources, finish="firewall.remove",
                                          params={"firewall": doc["id"], "entry": entry}))
    machines_follow(cloud, actions)
    return _actions_reply(cloud, actions)


def _describe(entry: Doc) -> str:
    if entry["type"] == "server":
        return f"server {entry['server']['id']}"
    return f"label selector {entry['label_selector']['selector']}"


register_action_routes("firewalls", KIND)


# -- completion and undo when an action fails (fault injection) ------------------------------
def _done(store: Store, action: Doc, params: dict[str, Any]) -> None:
    """The change was made in the request; success has nothing left to do."""


for _name in ("apply", "remove", "set_rules"):
    on_complete(f"firewall.{_name}")(_done)


@on_failure("firewall.apply")
def _undo_apply(store: Store, action: Doc, params: dict[str, Any]) -> None:
    if (doc := store.get(KIND, int(params["firewall"]))) is not None:
        doc["applied_to"] = [e for e in doc["applied_to"] if e != params["entry"]]
        store.put(KIND, doc)


@on_failure("firewall.remove")
def _undo_remove(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, int(params["firewall"]))
    entry = params["entry"]
    if doc is None or entry in doc["applied_to"]:
        return
    if entry["type"] == "server" and store.get("server", entry["server"]["id"]) is None:
        return  # the server is gone meanwhile
    doc["applied_to"].append(entry)
    store.put(KIND, doc)


@on_failure("firewall.set_rules")
def _undo_set_rules(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, int(params["firewall"]))
    if doc is not None and doc["rules"] == params["new"]:
        doc["rules"] = params["old"]
        store.put(KIND, doc)
