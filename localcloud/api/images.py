"""Images: the catalogue's system images (computed, never stored) and the project's
snapshots and backups (stored as kind ``image``), which servers create with create_image.

Hetzner publishes each system image once per architecture under the same name; the x86
image keeps the catalogue id and the arm one is offset by :data:`ARM_ID_OFFSET`, so a
name resolves to the image matching the server type's architecture.
"""

from __future__ import annotations

from typing import Any

from localcloud import errors
from localcloud.actions import on_complete, on_failure
from localcloud.api.common import change_protection, public, register_action_routes
from localcloud.cloud import Cloud, now_iso
from localcloud.events import subscribe
from localcloud.listing import filter_common, page, sort_items
from localcloud.products import SYSTEM_IMAGES
from localcloud.router import Reply, Request, route
from localcloud.store import Doc, Store
from localcloud.validate import Body

KIND = "image"
ARM_ID_OFFSET = 1_000_000_000
SYSTEM_DISK_SIZE = 5  # GB, as the real system images report
IMAGE_TYPES = ("system", "app", "snapshot", "backup")
IMAGE_STATUSES = ("available", "creating", "unavailable")
ARCHITECTURES = ("x86", "arm")


def _system(base: Doc, architecture: str) -> Doc:
    return {
        "id": base["id"] + (ARM_ID_OFFSET if architecture == "arm" else 0),
        "type": "system", "status": "available", "name": base["name"], "description": base["description"],
        "image_size": None, "disk_size": SYSTEM_DISK_SIZE, "created": base["created"], "created_from": None,
        "bound_to": None, "os_flavor": base["os_flavor"], "os_version": base["os_version"],
        "rapid_deploy": True, "protection": {"delete": False}, "deprecated": None, "deleted": None,
        "labels": {}, "architecture": architecture,
    }


def system_images() -> list[Doc]:
    return [_system(base, arch) for base in SYSTEM_IMAGES for arch in ARCHITECTURES]


def render(doc: Doc) -> Doc:
    out = public(doc)
    out["protection"] = dict(doc["protection"])
    out["labels"] = dict(doc["labels"])
    return out


def all_images(cloud: Cloud) -> list[Doc]:
    return system_images() + [render(d) for d in cloud.store.all(KIND)]


def get_image(cloud: Cloud, ident: int | None) -> Doc | None:
    """The rendered image with this id (system or stored), or None."""
    if ident is None:
        return None
    doc = cloud.store.get(KIND, ident)
    if doc is not None:
        return render(doc)
    return next((i for i in system_images() if i["id"] == ident), None)


def resolve(cloud: Cloud, ref: int | str, architecture: str, field: str = "image") -> Doc:
    """An image named in a request body (id, or name for the given architecture), usable to
    create or rebuild a server of that architecture; invalid_input naming ``field`` otherwise."""
    image = None
    if isinstance(ref, int) or (ref.isascii() and ref.isdigit()):
        image = get_image(cloud, int(ref))
    else:
        named = [i for i in all_images(cloud) if i["name"] == ref]
        image = next((i for i in named if i["architecture"] == architecture), named[0] if named else None)
    if image is None:
        raise errors.invalid_field(field, f"image {ref} not found")
    if image["status"] != "available":
        raise errors.invalid_field(field, f"image {ref} is not available (status {image['status']})")
    if image["architecture"] != architecture:
        raise errors.invalid_field(field, f"image {ref} is for {image['architecture']}, the server type for"
                                          f" {architecture}")
    return image


def create_from_server(cloud: Cloud, server: Doc, image_type: str, description: str | None,
                       labels: dict[str, str] | None, architecture: str) -> Doc:
    """Store a new snapshot/backup of ``server`` in status ``creating`` (servers' create_image)."""
    cloud.ensure_limit("images", KIND)
    source = get_image(cloud, server.get("_image"))
    ident = cloud.store.next_id(KIND)
    doc: Doc = {
        "id": ident, "type": image_type, "status": "creating", "name": None,
        "description": description if description is not None else f"{server['name']}-{ident}",
        "image_size": None, "disk_size": server["primary_disk_size"], "created": now_iso(),
        "created_from": {"id": server["id"], "name": server["name"]},
        "bound_to": server["id"] if image_type == "backup" else None,
        "os_flavor": source["os_flavor"] if source else "unknown",
        "os_version": source["os_version"] if source else None,
        "rapid_deploy": False, "protection": {"delete": False}, "deprecated": None, "deleted": None,
        "labels": labels or {}, "architecture": architecture,
    }
    cloud.store.put(KIND, doc)
    return doc


@on_complete("image.created")
def _image_created(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, params["image"])
    if doc is not None:
        doc["status"] = "available"
        if params.get("image_size_bytes"):  # a real snapshot (--hosts nspawn): its size
            doc["image_size"] = round(params["image_size_bytes"] / 1e9, 2)
        else:
            doc["image_size"] = round(0.4 + doc["disk_size"] * 0.02, 2)  # a plausible compressed size in GB
        store.put(KIND, doc)


@on_failure("image.created")
def _image_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    store.delete(KIND, params["image"])


def delete_backups(cloud: Cloud, server_id: int) -> None:
    """Backups are bound to their server: they go when it goes or disables backups."""
    for doc in cloud.store.all(KIND):
        if doc["type"] == "backup" and doc.get("bound_to") == server_id:
            cloud.store.delete(KIND, doc["id"])
            cloud.machines.delete_image(int(doc["id"]))


@subscribe("server.deleted")
def _server_deleted(cloud: Cloud, server: Doc, **_: Any) -> None:
    delete_backups(cloud, server["id"])


# -- routes -------------------------------------------------------------------------------
def _checked(req: Request, key: str, allowed: tuple[str, ...]) -> list[str]:
    values = req.q_all(key)
    for value in values:
        if value not in allowed:
            raise errors.invalid_field(key, f"must be one of {', '.join(allowed)}")
    return values


def _stored(req: Request) -> Doc:
    """A snapshot/backup of the project; system images cannot be changed or deleted."""
    ident = req.id()
    doc = req.cloud.store.get(KIND, ident)
    if doc is None:
        if any(i["id"] == ident for i in system_images()):
            raise errors.ApiError("forbidden", "only images of type snapshot or backup can be changed or deleted")
        raise errors.not_found("image")
    return doc


@route("GET", "/images")
def list_images(req: Request) -> Reply:
    items = filter_common(req, all_images(req.cloud))
    if types := _checked(req, "type", IMAGE_TYPES):
        items = [i for i in items if i["type"] in types]
    if statuses := _checked(req, "status", IMAGE_STATUSES):
        items = [i for i in items if i["status"] in statuses]
    if architecture := _checked(req, "architecture", ARCHITECTURES):
        items = [i for i in items if i["architecture"] == architecture[-1]]
    if bound := req.q_all("bound_to"):
        items = [i for i in items if i["bound_to"] is not None and str(i["bound_to"]) in bound]
    include = req.q("include_deprecated")
    if include not in (None, "true", "false"):
        raise errors.invalid_field("include_deprecated", "must be true or false")
    if include != "true":
        items = [i for i in items if i["deprecated"] is None]
    return page(req, "images", sort_items(req, items, ("id", "name", "created")))


@route("GET", "/images/{id}")
def get_one(req: Request) -> Reply:
    image = get_image(req.cloud, req.id())
    if image is None:
        raise errors.not_found("image")
    return Reply(200, {"image": image})


@route("PUT", "/images/{id}")
def update_image(req: Request) -> Reply:
    doc = _stored(req)
    body = Body(req.body)
    description = body.string("description", max_len=255)
    new_type = body.string("type", choices=("snapshot",))
    labels = body.labels()
    body.check()
    if description is not None:
        doc["description"] = description
    if new_type == "snapshot" and doc["type"] == "backup":
        doc["type"] = "snapshot"
        doc["bound_to"] = None
    if labels is not None:
        doc["labels"] = labels
    req.cloud.store.put(KIND, doc)
    return Reply(200, {"image": render(doc)})


@route("DELETE", "/images/{id}")
def delete_image(req: Request) -> Reply:
    cloud = req.cloud
    doc = _stored(req)
    cloud.ensure_deletable(KIND, doc)
    cloud.ensure_unlocked(KIND, doc["id"])
    cloud.store.delete(KIND, doc["id"])
    cloud.machines.delete_image(int(doc["id"]))
    return Reply(204, None)


@route("POST", "/images/{id}/actions/change_protection")
def change_image_protection(req: Request) -> Reply:
    _stored(req)
    return change_protection(req, KIND, ("delete",))


register_action_routes("images", KIND)
