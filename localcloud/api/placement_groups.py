"""Placement groups (type ``spread``): create, list, update, delete.

Membership is recorded only on the servers (``server.placement_group``); a group's
``servers`` is computed at render time. Decisions where the spec leaves room:
- Deleting a group that still holds servers is refused with ``resource_in_use`` (the
  servers must leave it first, as on the real service).
- :func:`ensure_room` is the spread group's cap of 10 servers (``placement_error``), for
  the servers family to call when a server joins.
"""

from __future__ import annotations

from localcloud import errors
from localcloud.api.common import public, update_name_labels
from localcloud.cloud import Cloud, now_iso
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.store import Doc
from localcloud.validate import Body

KIND = "placement_group"
TYPES = ("spread",)
NAME_MAX = 128
MAX_SERVERS_PER_SPREAD_GROUP = 10


def member_ids(cloud: Cloud, group_id: int) -> list[int]:
    return [s["id"] for s in cloud.store.all("server") if s.get("placement_group") == group_id]


def ensure_room(cloud: Cloud, group: Doc, adding: int = 1) -> None:
    """A spread group places each server on its own host, at most 10 of them."""
    if len(member_ids(cloud, group["id"])) + adding > MAX_SERVERS_PER_SPREAD_GROUP:
        raise errors.ApiError("placement_error", f"placement group {group['id']} already holds the maximum"
                                                 f" of {MAX_SERVERS_PER_SPREAD_GROUP} servers")


def render(cloud: Cloud, doc: Doc) -> Doc:
    out = public(doc)
    out["servers"] = member_ids(cloud, doc["id"])
    return out



def _group(req: Request) -> Doc:
    return req.cloud.get(KIND, req.id(), "placement group")


@route("GET", "/placement_groups")
def list_placement_groups(req: Request) -> Reply:
    items = filter_common(req, req.cloud.store.all(KIND))
    if types := req.q_all("type"):
        bad = [t for t in types if t not in TYPES]
        if bad:
            raise errors.invalid_field("type", f"unknown placement group type {bad[0]}")
        items = [g for g in items if g["type"] in types]
    rendered = [render(req.cloud, g) for g in sort_items(req, items, ("id", "name", "created"))]
    return page(req, "placement_groups", rendered)


@route("POST", "/placement_groups")
def create_placement_group(req: Request) -> Reply:
    """The spec's reply carries ``action``: null, as creating a group runs no action."""
    cloud = req.cloud
    body = Body(req.body)
    name = body.name("name", required=True, max_len=NAME_MAX)
    gtype = body.string("type", required=True, choices=TYPES)
    labels = body.labels()
    body.check()
    cloud.ensure_limit("placement_groups", KIND)
    cloud.ensure_unique_name(KIND, name)
    doc: Doc = {"id": cloud.store.next_id(KIND), "name": name, "type": gtype, "labels": labels or {},
                "created": now_iso()}
    cloud.store.put(KIND, doc)
    return Reply(201, {"placement_group": render(cloud, doc), "action": None})


@route("GET", "/placement_groups/{id}")
def get_placement_group(req: Request) -> Reply:
    return Reply(200, {"placement_group": render(req.cloud, _group(req))})


@route("PUT", "/placement_groups/{id}")
def update_placement_group(req: Request) -> Reply:
    doc = _group(req)
    update_name_labels(req, KIND, doc, name_max=NAME_MAX)
    req.cloud.store.put(KIND, doc)
    return Reply(200, {"placement_group": render(req.cloud, doc)})


@route("DELETE", "/placement_groups/{id}")
def delete_placement_group(req: Request) -> Reply:
    cloud = req.cloud
    doc = _group(req)
    if members := member_ids(cloud, doc["id"]):
        raise errors.ApiError("resource_in_use", f"placement group {doc['id']} still holds servers"
                                                 f" {', '.join(map(str, members))}")
    cloud.store.delete(KIND, doc["id"])
    return Reply(204, None)
