"""Request bodies of the servers family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from localcloud.validate import Body

USER_DATA_MAX = 32 * 1024


def is_id(value: Any) -> bool:
    """An id given as an integer or as a string of ASCII digits ("²".isdigit() is true, int("²") fails)."""
    text = str(value)
    return text.isascii() and text.isdigit()


def id_list(body: Body, key: str) -> list[Any]:
    values = body.array(key, default=[])
    if values and any(isinstance(v, bool) or not isinstance(v, (int, str)) for v in values):
        body.problem(key, "must be a list of IDs")
        return []
    return list(values or [])




@dataclass
class CreateServer:
    """The body of POST /servers, read and checked field by field (nothing resolved yet)."""

    name: str
    type_ref: int | str
    image_ref: int | str
    location_ref: int | str | None
    datacenter_ref: int | str | None
    start: bool
    ssh_key_refs: list[Any]
    volume_ids: list[Any]
    network_ids: list[Any]
    firewall_ids: list[int]
    user_data: str | None
    labels: dict[str, str] | None
    automount: bool
    group_id: int | None
    enable_ipv4: bool = True
    enable_ipv6: bool = True
    ipv4_id: int | None = None
    ipv6_id: int | None = None


def _firewall_ids(body: Body, items: list[Any] | None) -> list[int]:
    firewall_ids: list[int] = []
    for item in items or []:
        fid = item.get("firewall") if isinstance(item, dict) else None
        if isinstance(fid, bool) or not isinstance(fid, int):
            body.problem("firewalls", 'each entry must be {"firewall": <id>}')
            break
        firewall_ids.append(fid)
    return firewall_ids


def read_create(raw: Any) -> CreateServer:
    """invalid_input naming every field that is wrong (in the order they are read), or the body."""
    body = Body(raw)
    name, type_ref = body.name(), body.id_or_name("server_type", required=True)
    image_ref, location_ref = body.id_or_name("image", required=True), body.id_or_name("location")
    datacenter_ref, start = body.id_or_name("datacenter"), body.boolean("start_after_create", default=True)
    ssh_key_refs, volume_ids = id_list(body, "ssh_keys"), id_list(body, "volumes")
    network_ids = id_list(body, "networks")
    firewall_items = body.array("firewalls", default=[])
    user_data, labels = body.string("user_data"), body.labels()
    read = CreateServer(name, type_ref, image_ref, location_ref, datacenter_ref, start, ssh_key_refs, volume_ids,
                        network_ids, [], user_data, labels, body.boolean("automount", default=False),
                        body.integer("placement_group"))
    pn = body.object("public_net")
    if pn is not None:
        read.enable_ipv4 = pn.boolean("enable_ipv4", default=True)
        read.enable_ipv6 = pn.boolean("enable_ipv6", default=True)
        read.ipv4_id = pn.integer("ipv4", nullable=True)
        read.ipv6_id = pn.integer("ipv6", nullable=True)
        body.merge(pn)
    if user_data is not None and len(user_data.encode()) > USER_DATA_MAX:
        body.problem("user_data", "must be at most 32 KiB")
    read.firewall_ids = _firewall_ids(body, firewall_items)
    body.check()
    return read
