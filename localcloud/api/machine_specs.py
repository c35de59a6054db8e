"""The API's documents in the shapes the machine side takes (``localcloud.machines``), and
the tie between an action and the job that carries it out.

Handlers tell the machine side what to do through ``cloud.machines`` only; what they hand
it is built here from the store (a server's image, keys, addresses and networks).
"""

from __future__ import annotations

from collections.abc import Iterable

import localcloud.api.images as images
from localcloud.cloud import Cloud
from localcloud.machines import ImageRef, Job, PrivateNic, ServerSpec
from localcloud.store import Doc


def tie(cloud: Cloud, actions: Iterable[Doc | None], job: Job) -> None:
    """The actions stay ``running`` until the job is done and end in ``error`` when it fails
    (the action engine's ``jobs``); nothing without a job (``--hosts none``)."""
    if job is None:
        return
    for action in actions:
        if action is not None:
            cloud.engine.jobs[int(action["id"])] = job


def image_ref(cloud: Cloud, image_id: int | None) -> ImageRef:
    image = images.get_image(cloud, image_id)
    if image is None or image["type"] in ("system", "app"):
        return ImageRef(name=image["name"] if image else None)
    return ImageRef(snapshot=int(image["id"]))


def public_addresses(cloud: Cloud, server: Doc) -> tuple[str | None, str | None]:
    """The server's public IPv4 address and IPv6 network (its primary IPs), each None when it has none."""
    pn = server.get("public_net") or {}
    out: list[str | None] = []
    for slot in ("_ipv4", "_ipv6"):
        pip = cloud.store.get("primary_ip", pn[slot]) if pn.get(slot) is not None else None
        out.append(str(pip["ip"]) if pip is not None else None)
    return out[0], out[1]


def nic(cloud: Cloud, entry: Doc) -> PrivateNic | None:
    """A ``private_net`` entry of a server as a NIC; None when its network is gone."""
    net = cloud.store.get("network", entry["network"])
    if net is None:
        return None
    return PrivateNic(int(net["id"]), str(net["ip_range"]), str(entry["ip"]), tuple(entry.get("alias_ips") or ()),
                      entry.get("mac_address"))


def ssh_keys(cloud: Cloud, server: Doc) -> list[str]:
    return [str(k["public_key"]) for kid in server.get("_ssh_keys") or []
            if (k := cloud.store.get("ssh_key", kid)) is not None]


def server_spec(cloud: Cloud, server: Doc) -> ServerSpec:
    ipv4, ipv6 = public_addresses(cloud, server)
    nics = [n for e in server.get("private_net", []) if (n := nic(cloud, e)) is not None]
    return ServerSpec(int(server["id"]), str(server["name"]), image_ref(cloud, server.get("_image")),
                      ssh_keys(cloud, server), server.get("_user_data"), ipv4, ipv6, nics)
