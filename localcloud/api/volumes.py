"""Volumes: block storage in one location, attached to at most one server of that location.

The volume document is the only record of an attachment (``server``); a server's
``volumes`` list is computed from it, so the two can never disagree. Attach and detach
change ``server`` when the request is accepted (so a second attach sees it at once) and
undo it if the action fails.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from localcloud import errors
from localcloud.actions import on_complete, on_failure
from localcloud.api.common import change_protection, public, register_action_routes, update_name_labels
from localcloud.api.machine_specs import tie
from localcloud.cloud import Cloud, now_iso
from localcloud.events import subscribe
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.store import Doc, Store
from localcloud.validate import Body

KIND = "volume"
WHAT = "volume"
MIN_SIZE = 10
DEFAULT_MAX_SIZE = 10_240
FORMATS = ("ext4", "xfs")
STATUSES = ("available", "creating")
# The spec: alphanumerics, dashes, underscores and dots, alphanumeric at both ends, at most 64.
_NAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9._-]{0,62}[a-zA-Z0-9])?$")


def linux_device(volume_id: int) -> str:
    """Where the volume shows up on the server, as Hetzner names it."""
    return f"/dev/disk/by-id/scsi-0HC_Volume_{volume_id}"


def max_size(cloud: Cloud) -> int:
    return cloud.limits.get("volume_size_gb", DEFAULT_MAX_SIZE)


def server_location(cloud: Cloud, server: Doc) -> str | None:
    """The location name of a server, from its datacenter (stored id, or the rendered object)."""
    dc = cloud.products.datacenter(server.get("_datacenter"))
    if dc is None and isinstance(server.get("datacenter"), dict):
        dc = server["datacenter"]
    if dc is None:
        return None
    name = (dc.get("location") or {}).get("name")
    return str(name) if name is not None else None


def location_of(cloud: Cloud, volume: Doc) -> Doc:
    loc = cloud.products.location(volume["_location"])
    if loc is None:  # the catalogue never drops a location; keep render total anyway
        raise errors.ApiError("server_error", f"unknown location {volume['_location']}")
    return loc


def render(cloud: Cloud, doc: Doc) -> Doc:
    out = public(doc)
    out["location"] = copy.deepcopy(location_of(cloud, doc))
    return out


# -- attach, shared with server create ------------------------------------------------------
def check_attachable(cloud: Cloud, volume: Doc, server: Doc, field: str = "server") -> None:
    """Refuse an attachment the API refuses: already attached, or another location."""
    if volume.get("server") is not None:
        raise errors.ApiError("volume_already_attached",
                              f"volume {volume['id']} is already attached to server {volume['server']}")
    if server_location(cloud, server) != location_of(cloud, volume)["name"]:
        raise errors.invalid_field(field, f"server {server['id']} is not in the volume's location "
                                          f"{location_of(cloud, volume)['name']}")


def attach(cloud: Cloud, volume: Doc, server: Doc, *, automount: bool = False, after: Doc | None = None,
           host: bool = True) -> Doc:
    """Record the attachment and start ``attach_volume`` (undone if the action fails).

    Server create with ``volumes`` may call this after :func:`check_attachable`, with
    ``host=False``: it queues the host side itself once the machine's creation is queued.
    """
    volume["server"] = server["id"]
    cloud.store.put(KIND, volume)
    action = cloud.engine.start("attach_volume", [(KIND, volume["id"]), ("server", server["id"])],
                                finish="volume.attached", after=after,
                                params={"volume": volume["id"], "server": server["id"], "automount": automount})
    if host:
        tie(cloud, [action], cloud.machines.attach_volume(int(volume["id"]), int(server["id"]), automount))
    return action


@on_complete("volume.created")
def _created(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, params["volume"])
    if doc is not None:
        doc["status"] = "available"
        store.put(KIND, doc)


@on_failure("volume.created")
def _create_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    """A volume whose creation failed is gone (its attach next action then fails too)."""
    store.delete(KIND, params["volume"])


@on_complete("volume.attached")
def _attached(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, params["volume"])
    if doc is None or store.get("server", params["server"]) is None:
        raise errors.ApiError("action_failed", "the server or the volume no longer exists")


@on_failure("volume.attached")
def _attach_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, params["volume"])
    if doc is not None and doc.get("server") == params["server"]:
        doc["server"] = None
        store.put(KIND, doc)


@on_complete("volume.detached")
def _detached(store: Store, action: Doc, params: dict[str, Any]) -> None:
    """Nothing left to do: ``server`` was cleared when the request was accepted."""


@on_failure("volume.detached")
def _detach_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, params["volume"])
    if doc is not None and doc.get("server") is None and store.get("server", params["server"]) is not None:
        doc["server"] = params["server"]
        store.put(KIND, doc)


@on_complete("volume.resized")
def _resized(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, params["volume"])
    if doc is not None:
        doc["size"] = params["size"]
        store.put(KIND, doc)


@subscribe("server.deleted")
def _server_deleted(cloud: Cloud, server: Doc, **_: Any) -> None:
    """A deleted server's volumes stay, detached (with real hosts, the machine's destruction
    frees them: see ``Machines.delete_server``)."""
    for doc in cloud.store.all(KIND):
        if doc.get("server") == server["id"]:
            doc["server"] = None
            cloud.store.put(KIND, doc)


# -- routes ---------------------------------------------------------------------------------
@route("GET", "/volumes")
def list_volumes(req: Request) -> Reply:
    items = filter_common(req, req.cloud.store.all(KIND))
    statuses = req.q_all("status")
    if bad := [s for s in statuses if s not in STATUSES]:
        raise errors.invalid_field("status", f"unknown status {bad[0]}")
    if statuses:
        items = [v for v in items if v["status"] in statuses]
    items = sort_items(req, items, ("id", "name", "created"))
    return page(req, "volumes", [render(req.cloud, v) for v in items])


@route("POST", "/volumes")
def create_volume(req: Request) -> Reply:
    cloud = req.cloud
    body = Body(req.body)
    name = body.name()
    if name is not None and not _NAME.fullmatch(name):
        body.problem("name", "may hold alphanumerics, '-', '_' and '.', alphanumeric at both ends, at most 64")
    size = body.integer("size", required=True, minimum=MIN_SIZE, maximum=max_size(cloud))
    location_ref = body.id_or_name("location")
    server_id = body.integer("server")
    automount = body.boolean("automount", default=False)
    fmt = body.string("format", choices=FORMATS)
    labels = body.labels()
    if body.has("location") == body.has("server"):
        body.problem("location", "exactly one of location or server is required")
    if automount and not body.has("server"):
        body.problem("automount", "is only valid together with server")
    body.check()

    server: Doc | None = None
    if server_id is not None:
        server = cloud.store.get("server", server_id)
        if server is None:
            raise errors.invalid_field("server", f"server {server_id} not found")
        location_name = server_location(cloud, server)
        if location_name is None:
            raise errors.invalid_field("server", f"server {server_id} has no location")
    else:
        loc = cloud.products.location(location_ref)
        if loc is None:
            raise errors.invalid_field("location", f"location {location_ref} not found")
        location_name = loc["name"]

    cloud.ensure_limit("volumes", KIND)
    cloud.ensure_unique_name(KIND, name)
    ident = cloud.store.next_id(KIND)
    doc: Doc = {"id": ident, "name": name, "server": None, "_location": location_name, "size": size,
                "format": fmt, "linux_device": linux_device(ident), "labels": labels or {},
                "protection": {"delete": False}, "status": "creating", "created": now_iso()}
    cloud.store.put(KIND, doc)
    action = cloud.engine.start("create_volume", [(KIND, ident)], finish="volume.created",
                                params={"volume": ident})
    tie(cloud, [action], cloud.machines.create_volume(ident, int(size), fmt))
    next_actions: list[Doc] = []
    if server is not None:
        check_attachable(cloud, doc, server)
        next_actions.append(attach(cloud, doc, server, automount=bool(automount), after=action))
    return Reply(201, {"volume": render(cloud, doc), "action": cloud.action(action),
                       "next_actions": [cloud.action(a) for a in next_actions]})


@route("GET", "/volumes/{id}")
def get_volume(req: Request) -> Reply:
    return Reply(200, {"volume": render(req.cloud, req.cloud.get(KIND, req.id(), WHAT))})


@route("PUT", "/volumes/{id}")
def update_volume(req: Request) -> Reply:
    doc = req.cloud.get(KIND, req.id(), WHAT)
    name = (req.body or {}).get("name") if isinstance(req.body, dict) else None
    if isinstance(name, str) and not _NAME.fullmatch(name):
        raise errors.invalid_field("name", "may hold alphanumerics, '-', '_' and '.', alphanumeric at both ends")
    update_name_labels(req, KIND, doc)
    req.cloud.store.put(KIND, doc)
    return Reply(200, {"volume": render(req.cloud, doc)})


@route("DELETE", "/volumes/{id}")
def delete_volume(req: Request) -> Reply:
    cloud = req.cloud
    doc = cloud.get(KIND, req.id(), WHAT)
    cloud.ensure_deletable(KIND, doc)
    cloud.ensure_unlocked(KIND, doc["id"])
    if doc.get("server") is not None:
        # the real API answers service_error: "volume with ID '…' is still attached to a server"
        raise errors.ApiError("service_error", f"volume with ID '{doc['id']}' is still attached to a server")
    cloud.store.delete(KIND, doc["id"])
    cloud.machines.delete_volume(int(doc["id"]))
    return Reply(204, None)


@route("POST", "/volumes/{id}/actions/attach")
def attach_volume(req: Request) -> Reply:
    cloud = req.cloud
    doc = cloud.get(KIND, req.id(), WHAT)
    body = Body(req.body)
    server_id = body.integer("server", required=True)
    automount = body.boolean("automount", default=False)
    body.check()
    server = cloud.store.get("server", server_id)
    if server is None:
        raise errors.invalid_field("server", f"server {server_id} not found")
    cloud.ensure_unlocked(KIND, doc["id"])
    cloud.ensure_unlocked("server", server["id"])  # an attach is an action on the server too
    check_attachable(cloud, doc, server)
    return cloud.action_reply(attach(cloud, doc, server, automount=bool(automount)))


@route("POST", "/volumes/{id}/actions/detach")
def detach_volume(req: Request) -> Reply:
    cloud = req.cloud
    doc = cloud.get(KIND, req.id(), WHAT)
    cloud.ensure_unlocked(KIND, doc["id"])
    server_id = doc.get("server")
    if server_id is None:
        raise errors.ApiError("volume_not_attached", f"volume {doc['id']} is not attached to a server")
    resources: list[tuple[str, int]] = [(KIND, doc["id"])]
    if cloud.store.get("server", server_id) is not None:
        cloud.ensure_unlocked("server", server_id)  # a detach is an action on the server too
        resources.append(("server", server_id))
    doc["server"] = None
    cloud.store.put(KIND, doc)
    action = cloud.engine.start("detach_volume", resources, finish="volume.detached",
                                params={"volume": doc["id"], "server": server_id})
    tie(cloud, [action], cloud.machines.detach_volume(int(doc["id"]), int(server_id)))
    return cloud.action_reply(action)


@route("POST", "/volumes/{id}/actions/resize")
def resize_volume(req: Request) -> Reply:
    cloud = req.cloud
    doc = cloud.get(KIND, req.id(), WHAT)
    body = Body(req.body)
    raw = body.data.get("size")
    if isinstance(raw, float) and raw.is_integer():
        body.data["size"] = int(raw)  # the spec types size as a number; whole GB only
    elif isinstance(raw, float):
        raise errors.ApiError("volume_size_not_multiple_of_gb", "the size must be a whole number of GB")
    size = body.integer("size", required=True, maximum=max_size(cloud))
    body.check()
    if size < doc["size"]:
        raise errors.invalid_field("size", f"a volume cannot shrink: must be at least {doc['size']} GB")
    cloud.ensure_unlocked(KIND, doc["id"])
    action = cloud.engine.start("resize_volume", [(KIND, doc["id"])], finish="volume.resized",
                                params={"volume": doc["id"], "size": size})
    tie(cloud, [action], cloud.machines.resize_volume(int(doc["id"]), size))
    return cloud.action_reply(action)


@route("POST", "/volumes/{id}/actions/change_protection")
def change_volume_protection(req: Request) -> Reply:
    return change_protection(req, KIND, ("delete",))


register_action_routes("volumes", KIND)
