"""POST /servers, in named steps: read the body (``bodies.read_create``), resolve what it
names, check the project's limits, build the documents, start the actions and the machine.
Nothing changes a document before every check has passed."""

from __future__ import annotations

from dataclasses import dataclass, field

import localcloud.api.firewalls as firewalls
import localcloud.api.images as images
import localcloud.api.networks as networks
import localcloud.api.placement_groups as placement_groups
import localcloud.api.primary_ips as primary_ips
import localcloud.api.volumes as volumes
from localcloud import errors, events
from localcloud.api.machine_specs import tie
from localcloud.api.servers.bodies import CreateServer, is_id, read_create
from localcloud.api.servers.document import (
    KIND,
    attach_network,
    ensure_hostname,
    ensure_orderable,
    location_name,
    new_password,
    pick_location,
    render,
)
from localcloud.api.servers.effects import make_machine
from localcloud.cloud import Cloud, now_iso
from localcloud.router import Reply, Request, route
from localcloud.store import Doc


@dataclass
class Resolved:
    """What the body names, found (invalid_input naming the field otherwise)."""

    server_type: Doc
    location: str
    image: Doc
    ssh_keys: list[Doc]
    given_ips: dict[str, Doc] = field(default_factory=dict)  # ipv4/ipv6 -> primary IP
    volumes: list[Doc] = field(default_factory=list)
    networks: list[Doc] = field(default_factory=list)
    firewalls: list[Doc] = field(default_factory=list)
    group: Doc | None = None


@dataclass
class Started:
    action: Doc
    next_actions: list[Doc]
    start: Doc | None
    network_attaches: list[Doc]
    volume_attaches: list[tuple[int, Doc]]


@route("POST", "/servers")
def create_server(req: Request) -> Reply:
    cloud = req.cloud
    body = read_create(req.body)
    ensure_hostname(body.name)
    found = _resolve(cloud, body)
    _guard(cloud, body, found)
    doc = _build(cloud, body, found)
    started = _start(cloud, body, found, doc)
    return Reply(201, {
        "server": render(cloud, doc), "action": cloud.action(started.action),
        "next_actions": [cloud.action(a) for a in started.next_actions],
        "root_password": None if found.ssh_keys else new_password(cloud),
    })


# -- resolve references ------------------------------------------------------------------------
def _resolve(cloud: Cloud, body: CreateServer) -> Resolved:
    st = cloud.products.server_type(body.type_ref)
    if st is None:
        raise errors.invalid_field("server_type", f"server type {body.type_ref} not found")
    location = _requested_location(cloud, body)
    given_ips, location = _given_ips(cloud, body, location)
    vols, location = _volumes(cloud, body, location)
    if location is None:
        location = pick_location(cloud, st)
    ensure_orderable(cloud, st, location)
    image = images.resolve(cloud, body.image_ref, st["architecture"])
    if image["disk_size"] > st["disk"]:
        raise errors.invalid_field("image", f"image {image['id']} needs a disk of {image['disk_size']} GB,"
                                            f" server type {st['name']} has {st['disk']} GB")
    found = Resolved(st, location, image, [cloud.ref("ssh_key", ref, "ssh_keys") for ref in body.ssh_key_refs],
                     given_ips, vols)
    _resolve_links(cloud, body, found)
    return found


def _requested_location(cloud: Cloud, body: CreateServer) -> str | None:
    """The location named by ``location`` and ``datacenter`` (which must agree), if any."""
    location = None
    if body.location_ref is not None:
        loc = cloud.products.location(body.location_ref)
        if loc is None:
            raise errors.invalid_field("location", f"location {body.location_ref} not found")
        location = str(loc["name"])
    if body.datacenter_ref is not None:
        dc_ref = cloud.products.datacenter(body.datacenter_ref)
        if dc_ref is None:
            raise errors.invalid_field("datacenter", f"datacenter {body.datacenter_ref} not found")
        if location is not None and dc_ref["location"]["name"] != location:
            raise errors.invalid_field("datacenter",
                                       f"datacenter {body.datacenter_ref} is not in location {location}")
        location = str(dc_ref["location"]["name"])
    return location


def _given_ips(cloud: Cloud, body: CreateServer, location: str | None) -> tuple[dict[str, Doc], str | None]:
    """The primary IPs named in ``public_net`` (free, of their type, in the location), and the
    location they imply."""
    given: dict[str, Doc] = {}
    for ip_type, pid, enabled in (("ipv4", body.ipv4_id, body.enable_ipv4), ("ipv6", body.ipv6_id, body.enable_ipv6)):
        if pid is None or not enabled:
            continue
        pip = cloud.store.get("primary_ip", pid)
        if pip is None:
            raise errors.invalid_field(f"public_net.{ip_type}", f"primary IP {pid} not found")
        if pip["type"] != ip_type:
            raise errors.ApiError("primary_ip_version_mismatch", f"primary IP {pid} is not an {ip_type}")
        cloud.ensure_unlocked("primary_ip", pip["id"])
        if pip.get("assignee_id") is not None:
            raise errors.ApiError("primary_ip_assigned", f"primary IP {pid} is already assigned to server"
                                                         f" {pip['assignee_id']}", status=422)
        if location is not None and pip["_location"] != location:
            raise errors.ApiError("primary_ip_datacenter_mismatch",
                                  f"primary IP {pid} is in {pip['_location']}, not {location}", status=422)
        location = location or pip["_location"]
        given[ip_type] = pip
    return given, location


def _volumes(cloud: Cloud, body: CreateServer, location: str | None) -> tuple[list[Doc], str | None]:
    """The volumes to attach (detached, in the location), and the location they imply."""
    vols: list[Doc] = []
    for vid in body.volume_ids:
        vol = cloud.store.get("volume", int(vid)) if is_id(vid) else None
        if vol is None:
            raise errors.invalid_field("volumes", f"volume {vid} not found")
        if vol.get("server") is not None:
            raise errors.ApiError("volume_already_attached", f"volume {vid} is attached to server {vol['server']}")
        vol_location = location_name(cloud, vol.get("_location"))
        if location is not None and vol_location is not None and vol_location != location:
            raise errors.invalid_field("volumes", f"volume {vid} is in {vol_location}, not {location}")
        location = location or vol_location
        vols.append(vol)
    return vols, location


def _resolve_links(cloud: Cloud, body: CreateServer, found: Resolved) -> None:
    """Networks (with room), firewalls and the placement group."""
    for nid in body.network_ids:
        net = cloud.store.get("network", int(nid)) if is_id(nid) else None
        if net is None:
            raise errors.invalid_field("networks", f"network {nid} not found")
        networks.ensure_capacity(cloud, net)
        found.networks.append(net)
    for fid in body.firewall_ids:
        fw = cloud.store.get("firewall", fid)
        if fw is None:
            raise errors.invalid_field("firewalls", f"firewall {fid} not found")
        found.firewalls.append(fw)
    if body.group_id is not None:
        found.group = cloud.store.get("placement_group", body.group_id)
        if found.group is None:
            raise errors.invalid_field("placement_group", f"placement group {body.group_id} not found")
    if not body.enable_ipv4 and not body.enable_ipv6 and not found.networks:
        raise errors.invalid_field("networks", "a server without public IPs needs at least one network")


# -- project guards ----------------------------------------------------------------------------
def _guard(cloud: Cloud, body: CreateServer, found: Resolved) -> None:
    cloud.ensure_limit("servers", KIND)
    cloud.ensure_unique_name(KIND, body.name)
    if found.group is not None:
        placement_groups.ensure_room(cloud, found.group)


# -- build the documents (every check above passed) ----------------------------------------------
def _build(cloud: Cloud, body: CreateServer, found: Resolved) -> Doc:
    store = cloud.store
    st, dc = found.server_type, cloud.products.datacenter_of(found.location)
    ident = store.next_id(KIND)
    doc: Doc = {
        "id": ident, "name": body.name, "status": "initializing", "created": now_iso(),
        "labels": body.labels or {}, "protection": {"delete": False, "rebuild": False},
        "rescue_enabled": False, "backup_window": None, "primary_disk_size": st["disk"],
        "placement_group": found.group["id"] if found.group else None, "private_net": [],
        "public_net": {"_ipv4": None, "_ipv6": None},
        "_server_type": st["id"], "_datacenter": dc["id"], "_image": found.image["id"],
        "_user_data": body.user_data, "_ssh_keys": [k["id"] for k in found.ssh_keys], "_automount": body.automount,
    }
    store.put(KIND, doc)
    _allocate_public_ips(cloud, body, found, doc)
    for net in found.networks:
        attach_network(cloud, doc, net, None, [], None)
    store.put(KIND, doc)
    for vol in found.volumes:
        volumes.check_attachable(cloud, vol, doc, "volumes")
    for fw in found.firewalls:
        if not any(e.get("type") == "server" and (e.get("server") or {}).get("id") == ident
                   for e in fw.get("applied_to") or []):
            firewalls.apply_to_server(cloud, fw, doc)
    return doc


def _allocate_public_ips(cloud: Cloud, body: CreateServer, found: Resolved, doc: Doc) -> None:
    """The given primary IPs, or new ones (deleted with the server), assigned to it."""
    for ip_type, enabled in (("ipv4", body.enable_ipv4), ("ipv6", body.enable_ipv6)):
        if not enabled:
            continue
        pip = found.given_ips.get(ip_type) or primary_ips.new_doc(cloud, ip_type, found.location, auto_delete=True)
        pip["assignee_id"] = doc["id"]
        cloud.store.put("primary_ip", pip)
        doc["public_net"][primary_ips.server_slot(ip_type)] = pip["id"]


# -- start the actions and the machine ---------------------------------------------------------
def _start(cloud: Cloud, body: CreateServer, found: Resolved, doc: Doc) -> Started:
    started = _start_actions(cloud, body, found, doc)
    events.emit(cloud, "server.created", server=doc)
    make_machine(cloud, doc, started.action, started.start, started.network_attaches)
    for vid, attach_action in started.volume_attaches:  # after the machine is made (and booted)
        tie(cloud, [attach_action], cloud.machines.attach_volume(vid, int(doc["id"]), bool(body.automount)))
    return started


def _start_actions(cloud: Cloud, body: CreateServer, found: Resolved, doc: Doc) -> Started:
    """create_server, then (after it) attach_to_network per network, attach_volume per volume
    and start_server; next_actions lists start_server first."""
    engine, ident = cloud.engine, int(doc["id"])
    action = engine.start("create_server", [(KIND, ident)], finish="server.created",
                          params={"server": ident, "start": body.start})
    network_attaches = [
        engine.start("attach_to_network", [(KIND, ident), ("network", entry["network"])],
                     finish="server.network_attached", after=action,
                     params={"server": ident, "network": entry["network"]})
        for entry in doc["private_net"]]
    volume_attaches = [(int(vol["id"]), volumes.attach(cloud, vol, doc, automount=body.automount, after=action,
                                                       host=False)) for vol in found.volumes]
    start = None
    if body.start:
        start = engine.start("start_server", [(KIND, ident)], finish="server.started", after=action,
                             params={"server": ident})
    next_actions = ([start] if start else []) + network_attaches + [a for _, a in volume_attaches]
    return Started(action, next_actions, start, network_attaches, volume_attaches)
