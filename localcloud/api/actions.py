"""GET /actions?id=..&id=.. (batched polling) and GET /actions/{id}."""

from __future__ import annotations

from localcloud import errors
from localcloud.api.common import ACTION_SORTS
from localcloud.listing import page, sort_items
from localcloud.router import Reply, Request, route


@route("GET", "/actions")
def list_actions(req: Request) -> Reply:
    ids = req.q_all("id")
    if not ids:
        raise errors.invalid_field("id", "is required: listing all actions was removed from the API")
    if any(not (i.isascii() and i.isdigit()) for i in ids):
        raise errors.invalid_field("id", "must be integers")
    found = []
    for ident in dict.fromkeys(int(i) for i in ids):
        action = req.cloud.store.get("action", ident)
        if action is not None:
            found.append(req.cloud.action(action))
    if statuses := req.q_all("status"):
        found = [a for a in found if a["status"] in statuses]
    return page(req, "actions", sort_items(req, found, ACTION_SORTS))


@route("GET", "/actions/{id}")
def get_action(req: Request) -> Reply:
    action = req.cloud.get("action", req.id())
    return Reply(200, {"action": req.cloud.action(action)})
