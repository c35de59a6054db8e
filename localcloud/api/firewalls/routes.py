"""Routes of the firewall collection, of one firewall and of its actions, with the helpers
that apply a firewall to resources (also for a server created with ``firewalls``)."""

from __future__ import annotations

from localcloud import errors
from localcloud.api.common import register_action_routes, update_name_labels
from localcloud.api.firewalls.bodies import _read_resources, _read_rules
from localcloud.api.firewalls.document import (
    KIND,
    NAME_MAX,
    _direct_ids,
    _ensure_room,
    _firewall,
    _has_public_interface,
    _selected_by,
    _server_entry,
    affected_server_ids,
    applies_to,
    render,
    selector_server_ids,
)
from localcloud.api.firewalls.effects import machines_follow
from localcloud.cloud import Cloud, now_iso
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.store import Doc
from localcloud.validate import Body


# -- applying to resources -------------------------------------------------------------------
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
