"""The products, read-only: locations, datacenters, server types, load balancer types, pricing
(``localcloud/products.py``)."""

from __future__ import annotations

import copy

from localcloud import errors
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.store import Doc


def _one(items: list[Doc], req: Request, key: str, what: str) -> Reply:
    ident = req.id()
    for item in items:
        if item["id"] == ident:
            return Reply(200, {key: copy.deepcopy(item)})
    raise errors.not_found(what)


@route("GET", "/locations")
def list_locations(req: Request) -> Reply:
    items = filter_common(req, copy.deepcopy(req.cloud.products.locations), by_labels=False)
    return page(req, "locations", sort_items(req, items, ("id", "name")))


@route("GET", "/locations/{id}")
def get_location(req: Request) -> Reply:
    return _one(req.cloud.products.locations, req, "location", "location")


@route("GET", "/datacenters")
def list_datacenters(req: Request) -> Reply:
    cat = req.cloud.products
    items = filter_common(req, [cat.render_datacenter(dc) for dc in cat.datacenters], by_labels=False)
    reply = page(req, "datacenters", sort_items(req, items, ("id", "name")))
    assert reply.body is not None
    reply.body["recommendation"] = cat.datacenters[0]["id"]
    return reply


@route("GET", "/datacenters/{id}")
def get_datacenter(req: Request) -> Reply:
    cat = req.cloud.products
    return _one([cat.render_datacenter(dc) for dc in cat.datacenters], req, "datacenter", "datacenter")


@route("GET", "/server_types")
def list_server_types(req: Request) -> Reply:
    items = filter_common(req, copy.deepcopy(req.cloud.products.server_types), by_labels=False)
    return page(req, "server_types", items)


@route("GET", "/server_types/{id}")
def get_server_type(req: Request) -> Reply:
    return _one(req.cloud.products.server_types, req, "server_type", "server type")


@route("GET", "/load_balancer_types")
def list_load_balancer_types(req: Request) -> Reply:
    items = filter_common(req, copy.deepcopy(req.cloud.products.load_balancer_types), by_labels=False)
    return page(req, "load_balancer_types", items)


@route("GET", "/load_balancer_types/{id}")
def get_load_balancer_type(req: Request) -> Reply:
    return _one(req.cloud.products.load_balancer_types, req, "load_balancer_type", "load balancer type")


@route("GET", "/pricing")
def get_pricing(req: Request) -> Reply:
    return Reply(200, {"pricing": req.cloud.products.pricing()})
