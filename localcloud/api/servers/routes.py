"""Routes of the server collection and of one server (create: ``create.py``; actions: ``actions.py``)."""

from __future__ import annotations

from localcloud import errors, events
from localcloud.api.common import public
from localcloud.api.machine_specs import tie
from localcloud.api.servers.document import KIND, STATUSES, ensure_hostname, render, server_of
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.validate import Body


# -- collection ---------------------------------------------------------------------------
@route("GET", "/servers")
def list_servers(req: Request) -> Reply:
    cloud = req.cloud
    items = filter_common(req, cloud.store.all(KIND))
    statuses = req.q_all("status")
    for status in statuses:
        if status not in STATUSES:
            raise errors.invalid_field("status", f"must be one of {', '.join(STATUSES)}")
    if statuses:
        items = [s for s in items if s["status"] in statuses]
    items = sort_items(req, items, ("id", "name", "created"))
    reply = page(req, "servers", [public(s) for s in items])
    assert reply.body is not None
    reply.body["servers"] = [render(cloud, cloud.get(KIND, s["id"])) for s in reply.body["servers"]]
    return reply



# -- one server -----------------------------------------------------------------------------
@route("GET", "/servers/{id}")
def get_server(req: Request) -> Reply:
    return Reply(200, {"server": render(req.cloud, server_of(req))})


@route("PUT", "/servers/{id}")
def update_server(req: Request) -> Reply:
    cloud = req.cloud
    doc = server_of(req)
    body = Body(req.body)
    name = body.name("name", required=False)
    labels = body.labels()
    body.check()
    ensure_hostname(name)
    if name is not None and name != doc["name"]:
        cloud.ensure_unique_name(KIND, name, except_id=doc["id"])
        doc["name"] = name
    if labels is not None and labels != doc["labels"]:
        doc["labels"] = labels
        cloud.store.put(KIND, doc)
        events.emit(cloud, "server.labels_changed", server=doc)
    cloud.store.put(KIND, doc)
    return Reply(200, {"server": render(cloud, doc)})


@route("DELETE", "/servers/{id}")
def delete_server(req: Request) -> Reply:
    cloud = req.cloud
    doc = server_of(req)
    cloud.ensure_deletable(KIND, doc)
    action = cloud.engine.start("delete_server", [(KIND, doc["id"])])
    attached = [int(v["id"]) for v in cloud.store.all("volume") if v.get("server") == doc["id"]]
    cloud.store.delete(KIND, doc["id"])
    events.emit(cloud, "server.deleted", server=doc)  # volumes detach
    tie(cloud, [action], cloud.machines.delete_server(int(doc["id"]), attached))
    return cloud.action_reply(action, 200)


