"""SSH keys: create (fingerprint computed, unique by name and fingerprint), list, update, delete."""

from __future__ import annotations

import base64
import hashlib

from localcloud import errors
from localcloud.api.common import public, update_name_labels
from localcloud.cloud import now_iso
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.store import Doc
from localcloud.validate import Body

KIND = "ssh_key"
KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "ssh-dss", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")


def fingerprint(public_key: str) -> str | None:
    """MD5 fingerprint as the API shows it (aa:bb:...), or None for a malformed key."""
    parts = public_key.strip().split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        return None
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def render(doc: Doc) -> Doc:
    return public(doc)


@route("GET", "/ssh_keys")
def list_ssh_keys(req: Request) -> Reply:
    items = filter_common(req, req.cloud.store.all(KIND))
    if fp := req.q("fingerprint"):
        items = [k for k in items if k["fingerprint"] == fp]
    return page(req, "ssh_keys", [render(k) for k in sort_items(req, items, ("id", "name"))])


@route("POST", "/ssh_keys")
def create_ssh_key(req: Request) -> Reply:
    cloud = req.cloud
    body = Body(req.body)
    name = body.name()
    public_key = body.string("public_key", required=True)
    labels = body.labels()
    fp = fingerprint(public_key) if public_key is not None else None
    if public_key is not None and fp is None:  # an empty key too: a key always has a fingerprint
        body.problem("public_key", "is not a valid SSH public key")
    body.check()
    assert fp is not None and public_key is not None
    cloud.ensure_limit("ssh_keys", KIND)
    cloud.ensure_unique_name(KIND, name)
    for existing in cloud.store.all(KIND):
        if existing["fingerprint"] == fp:
            raise errors.uniqueness_error("public_key", "SSH key with the same fingerprint already exists")
    doc = {"id": cloud.store.next_id(KIND), "name": name, "fingerprint": fp, "public_key": public_key.strip(),
           "labels": labels or {}, "created": now_iso()}
    cloud.store.put(KIND, doc)
    return Reply(201, {"ssh_key": render(doc)})


@route("GET", "/ssh_keys/{id}")
def get_ssh_key(req: Request) -> Reply:
    return Reply(200, {"ssh_key": render(req.cloud.get(KIND, req.id(), "SSH key"))})


@route("PUT", "/ssh_keys/{id}")
def update_ssh_key(req: Request) -> Reply:
    doc = req.cloud.get(KIND, req.id(), "SSH key")
    update_name_labels(req, KIND, doc)
    req.cloud.store.put(KIND, doc)
    return Reply(200, {"ssh_key": render(doc)})


@route("DELETE", "/ssh_keys/{id}")
def delete_ssh_key(req: Request) -> Reply:
    doc = req.cloud.get(KIND, req.id(), "SSH key")
    req.cloud.store.delete(KIND, doc["id"])
    return Reply(204, None)
