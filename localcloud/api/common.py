"""Helpers shared by the resource families: action sub-resources, protection, labels."""

from __future__ import annotations

from typing import Any

from localcloud import errors
from localcloud.listing import page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.store import Doc
from localcloud.validate import Body

ACTION_SORTS = ("id", "command", "status", "started", "finished")


def _action_list(req: Request, actions: list[Doc]) -> Reply:
    cloud = req.cloud
    statuses = req.q_all("status")
    if statuses:
        bad = [s for s in statuses if s not in ("running", "success", "error")]
        if bad:
            raise errors.invalid_field("status", f"unknown status {bad[0]}")
    rendered = [cloud.action(a) for a in actions]
    if statuses:
        rendered = [a for a in rendered if a["status"] in statuses]
    if ids := req.q_all("id"):
        wanted = {int(i) for i in ids if i.isascii() and i.isdigit()}
        rendered = [a for a in rendered if a["id"] in wanted]
    return page(req, "actions", sort_items(req, rendered, ACTION_SORTS))


def actions_of(req: Request, rtype: str, rid: int | None = None) -> list[Doc]:
    out = []
    for action in req.cloud.store.all("action"):
        for res in action["resources"]:
            if res["type"] == rtype and (rid is None or res["id"] == rid):
                out.append(action)
                break
    return out


def register_action_routes(collection: str, rtype: str) -> None:
    """GET /{collection}/actions[/{id}] and /{collection}/{id}/actions[/{action_id}]."""

    def list_all(req: Request) -> Reply:
        return _action_list(req, actions_of(req, rtype))

    def get_one(req: Request) -> Reply:
        action = req.cloud.store.get("action", req.id())
        if action is None or all(r["type"] != rtype for r in action["resources"]):
            raise errors.not_found("action")
        return Reply(200, {"action": req.cloud.action(action)})

    def list_for(req: Request) -> Reply:
        rid = req.id()
        req.cloud.get(rtype, rid)
        return _action_list(req, actions_of(req, rtype, rid))

    def get_for(req: Request) -> Reply:
        rid = req.id()
        req.cloud.get(rtype, rid)
        action = req.cloud.store.get("action", req.id("action_id"))
        if action is None or not any(r["type"] == rtype and r["id"] == rid for r in action["resources"]):
            raise errors.not_found("action")
        return Reply(200, {"action": req.cloud.action(action)})

    route("GET", f"/{collection}/actions")(list_all)
    route("GET", f"/{collection}/actions/{{id}}")(get_one)
    route("GET", f"/{collection}/{{id}}/actions")(list_for)
    route("GET", f"/{collection}/{{id}}/actions/{{action_id}}")(get_for)


def change_protection(req: Request, rtype: str, keys: tuple[str, ...] = ("delete",),
                      required: tuple[str, ...] = ()) -> Reply:
    """POST .../actions/change_protection: flags change at once, the action is already done.
    ``required``: the flags the spec requires for this resource (primary IPs: delete)."""
    cloud = req.cloud
    doc = cloud.get(rtype, req.id())
    body = Body(req.body)
    values = {k: body.boolean(k, required=k in required) for k in keys}
    body.check()
    for key, value in values.items():
        if value is not None:
            doc["protection"][key] = value
    if "rebuild" in keys and values.get("delete") is not None and values.get("rebuild") is None:
        doc["protection"]["rebuild"] = values["delete"]  # the API keeps rebuild == delete for servers
    cloud.store.put(rtype, doc)
    action = cloud.engine.start("change_protection", [(rtype, doc["id"])], instant=True)
    return cloud.action_reply(action)


def update_name_labels(req: Request, rtype: str, doc: Doc, *, name_unique: bool = True,
                       name_max: int = 63) -> None:
    """PUT body shared by most resources: ``name`` and/or ``labels``."""
    body = Body(req.body)
    name = body.name("name", required=False, max_len=name_max)
    labels = body.labels()
    body.check()
    if name is not None and name != doc.get("name"):
        if name_unique:
            req.cloud.ensure_unique_name(rtype, name, except_id=doc["id"])
        doc["name"] = name
    if labels is not None:
        doc["labels"] = labels


def public(doc: Doc) -> dict[str, Any]:
    """A stored document without its internal ``_`` keys."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}
