"""Servers: create (with public/private networking, firewalls, volumes, placement), list,
update, delete, and the server actions (power, type, networks, images, rescue, ...).

Status changes follow the actions: a handler sets the transitional status when the action
starts (``starting``, ``stopping``, ``migrating``, ``rebuilding``) and a completion handler
sets the final one, so clients that poll see the same sequence as on the real API.
Everything a server is linked to that another family owns (firewalls, volumes, load
balancers, placement groups) is computed from those documents at render time.
"""

from __future__ import annotations

import ipaddress
import re
import string
from datetime import UTC, datetime
from typing import Any

from localcloud import errors, events
from localcloud.actions import on_complete, on_failure
from localcloud.api import firewalls, images, ipam, networks, placement_groups, primary_ips, volumes
from localcloud.api.common import change_protection, public, register_action_routes
from localcloud.api.machine_specs import image_ref as machine_image
from localcloud.api.machine_specs import nic, server_spec, tie
from localcloud.api.machine_specs import ssh_keys as machine_keys
from localcloud.cloud import Cloud, now_iso
from localcloud.events import subscribe
from localcloud.labels import parse_selector
from localcloud.listing import filter_common, page, sort_items
from localcloud.router import Reply, Request, route
from localcloud.store import Doc, Store
from localcloud.validate import Body

KIND = "server"
STATUSES = ("running", "initializing", "starting", "stopping", "off", "deleting", "migrating", "rebuilding",
            "unknown")
USER_DATA_MAX = 32 * 1024
BACKUP_WINDOW = "22-02"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_PASSWORD_CHARS = string.ascii_letters + string.digits


# -- helpers ------------------------------------------------------------------------------
def _password(cloud: Cloud, length: int = 20) -> str:
    return "".join(cloud.rng.choice(_PASSWORD_CHARS) for _ in range(length))


def _mac(cloud: Cloud) -> str:
    return "86:00:00:" + ":".join(f"{cloud.rng.randrange(256):02x}" for _ in range(3))


def location_of(cloud: Cloud, server: Doc) -> Doc:
    dc = cloud.catalog.datacenter(server["_datacenter"])
    assert dc is not None
    loc = cloud.catalog.location(dc["location"]["name"])
    assert loc is not None
    return loc


def server_type_of(cloud: Cloud, server: Doc) -> Doc:
    st = cloud.catalog.server_type(server["_server_type"])
    assert st is not None
    return st


def _location_name(cloud: Cloud, ref: Any) -> str | None:
    """A location stored by another family as a name or an id."""
    if ref is None:
        return None
    loc = cloud.catalog.location(ref)
    return str(loc["name"]) if loc else str(ref)


def _ensure_hostname(name: str | None) -> None:
    if name is not None and not _HOSTNAME.fullmatch(name):
        raise errors.invalid_field("name", "must be a valid hostname (RFC 1123: letters, digits, '-' and '.')")


def _ensure_orderable(cloud: Cloud, st: Doc, location: str, field: str = "server_type",
                      code: str = "invalid_input") -> None:
    """Why the type cannot be ordered here, as the API reports it (invalid_input for
    deprecated or unsupported, resource_unavailable for sold out or an injected fault)."""
    def invalid(message: str) -> errors.ApiError:
        if code == "invalid_input":
            return errors.invalid_field(field, message)
        return errors.ApiError(code, message, status=422)

    if _retired(st):
        raise invalid(f"server type {st['name']} is deprecated and can no longer be ordered")
    entry = next((loc for loc in st.get("locations", []) if loc["name"] == location), None)
    if entry is None:
        raise invalid(f"unsupported location for server type {st['name']} ({location})")
    if not entry.get("available", True) or cloud.faults.is_unavailable("server_type", st["name"], location):
        raise errors.resource_unavailable(f"server type {st['name']} is currently not available in {location}")


def _retired(st: Doc) -> bool:
    """Deprecated and past ``unavailable_after``: listed, but no longer orderable."""
    after = (st.get("deprecation") or {}).get("unavailable_after")
    if not after:
        return False
    return datetime.fromisoformat(str(after).replace("Z", "+00:00")) <= datetime.now(UTC)


def _pick_location(cloud: Cloud, st: Doc) -> str:
    for loc in cloud.catalog.locations:
        try:
            _ensure_orderable(cloud, st, loc["name"])
        except errors.ApiError:
            continue
        return str(loc["name"])
    raise errors.resource_unavailable(f"server type {st['name']} is currently not available in any location")


def _network_zone(cloud: Cloud, location: str) -> str:
    loc = cloud.catalog.location(location)
    return str(loc["network_zone"]) if loc else ""


def _zone_network(network: Doc, zone: str, ip_range: str | None = None) -> Doc:
    """The network restricted to the subnets a server in ``zone`` can use (for allocate_ip)."""
    subnets = [s for s in network.get("subnets", [])
               if s.get("network_zone", zone) == zone and (ip_range is None or s.get("ip_range") == ip_range)]
    return {**network, "subnets": subnets}


def _attach(cloud: Cloud, server: Doc, network: Doc, ip: str | None, alias_ips: list[str],
            ip_range: str | None) -> Doc:
    """Pick the addresses and record the attachment on the server (not yet stored)."""
    zone = _network_zone(cloud, location_of(cloud, server)["name"])
    if ip_range is not None and not any(s.get("ip_range") == ip_range for s in network.get("subnets", [])):
        raise errors.invalid_field("ip_range", f"{ip_range} is not a subnet of network {network['id']}")
    usable = _zone_network(network, zone, ip_range)
    if not any(s.get("type") in ("cloud", "server") for s in usable["subnets"]):
        raise errors.ApiError("no_subnet_available",
                              f"network {network['id']} has no subnet in network zone {zone}")
    for entry in server.get("private_net", []):
        other = cloud.store.get("network", entry["network"])
        if other is not None and ipaddress.ip_network(other["ip_range"]).overlaps(
                ipaddress.ip_network(network["ip_range"])):
            raise errors.ApiError("networks_overlap", f"network {network['id']} overlaps network {other['id']}"
                                                      f" the server is attached to")
    address = ipam.allocate_ip(cloud, usable, ip, "ip")
    aliases = _aliases(cloud, usable, alias_ips, {address})
    entry = {"network": network["id"], "ip": address, "alias_ips": aliases, "mac_address": _mac(cloud)}
    server.setdefault("private_net", []).append(entry)
    return entry


def _aliases(cloud: Cloud, network: Doc, alias_ips: list[Any], taken: set[str]) -> list[str]:
    out: list[str] = []
    for alias in alias_ips:
        if not isinstance(alias, str):
            raise errors.invalid_field("alias_ips", "must be IP address strings")
        if alias in taken or alias in out:
            raise errors.ApiError("ip_not_available", f"IP {alias} is already in use")
        out.append(ipam.allocate_ip(cloud, network, alias, "alias_ips"))
    return out


def _load_balancer_ids(cloud: Cloud, server: Doc) -> list[int]:
    out: list[int] = []
    for lb in cloud.store.all("load_balancer"):
        for target in lb.get("targets") or []:
            if target.get("type") == "server" and (target.get("server") or {}).get("id") == server["id"]:
                out.append(lb["id"])
                break
            if target.get("type") == "label_selector":
                text = (target.get("label_selector") or {}).get("selector") or ""
                try:
                    if parse_selector(text).matches(server.get("labels") or {}):
                        out.append(lb["id"])
                        break
                except errors.ApiError:
                    continue
    return out


def _ensure_off(server: Doc) -> None:
    if server["status"] != "off":
        raise errors.ApiError("server_not_stopped", f"server {server['id']} must be powered off (status"
                                                    f" {server['status']})", status=422)


# -- rendering ----------------------------------------------------------------------------
def _public_net(cloud: Cloud, server: Doc) -> Doc:
    pn = server.get("public_net") or {}
    ipv4 = ipv6 = None
    if pn.get("_ipv4") is not None and (p4 := cloud.store.get("primary_ip", pn["_ipv4"])) is not None:
        ptr = next((e["dns_ptr"] for e in p4["dns_ptr"] if e["ip"] == p4["ip"]),
                   primary_ips.default_dns_ptr(p4["ip"]))
        ipv4 = {"id": p4["id"], "ip": p4["ip"], "blocked": p4["blocked"], "dns_ptr": ptr}
    if pn.get("_ipv6") is not None and (p6 := cloud.store.get("primary_ip", pn["_ipv6"])) is not None:
        ipv6 = {"id": p6["id"], "ip": p6["ip"], "blocked": p6["blocked"],
                "dns_ptr": [dict(e) for e in p6["dns_ptr"]]}
    return {"ipv4": ipv4, "ipv6": ipv6, "floating_ips": [],
            "firewalls": [{"id": i, "status": "applied"} for i in firewalls.firewalls_for_server(cloud, server)]}


def _placement_group(cloud: Cloud, group_id: int | None) -> Doc | None:
    group = cloud.store.get("placement_group", group_id) if group_id is not None else None
    return placement_groups.render(cloud, group) if group is not None else None


def render(cloud: Cloud, doc: Doc) -> Doc:
    st = server_type_of(cloud, doc)
    loc = location_of(cloud, doc)
    dc = cloud.catalog.datacenter(doc["_datacenter"])
    assert dc is not None
    price = next((p for p in st.get("prices", []) if p["location"] == loc["name"]), None)
    return {
        "id": doc["id"], "name": doc["name"], "status": doc["status"], "created": doc["created"],
        "public_net": _public_net(cloud, doc),
        "private_net": [{"network": e["network"], "ip": e["ip"], "alias_ips": list(e["alias_ips"]),
                         "mac_address": e["mac_address"]} for e in doc.get("private_net", [])],
        "server_type": dict(st), "location": dict(loc), "datacenter": cloud.catalog.render_datacenter(dc),
        "image": images.get_image(cloud, doc.get("_image")), "iso": None,
        "rescue_enabled": doc["rescue_enabled"], "locked": cloud.engine.is_locked(KIND, doc["id"]),
        "backup_window": doc["backup_window"], "outgoing_traffic": 0, "ingoing_traffic": 0,
        "included_traffic": price["included_traffic"] if price else None,
        "protection": dict(doc["protection"]), "labels": dict(doc["labels"]),
        "volumes": [v["id"] for v in cloud.store.all("volume") if v.get("server") == doc["id"]],
        "load_balancers": _load_balancer_ids(cloud, doc),
        "primary_disk_size": doc["primary_disk_size"],
        "placement_group": _placement_group(cloud, doc.get("placement_group")),
    }


# -- completion handlers ------------------------------------------------------------------
def _set_status(store: Store, params: dict[str, Any], status: str) -> Doc | None:
    doc = store.get(KIND, params["server"])
    if doc is not None:
        doc["status"] = status
        store.put(KIND, doc)
    return doc


@on_complete("server.created")
def _created(store: Store, action: Doc, params: dict[str, Any]) -> None:
    _set_status(store, params, "starting" if params.get("start") else "off")


@on_failure("server.created")
def _create_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    _set_status(store, params, "off")


@on_complete("server.started")
def _started(store: Store, action: Doc, params: dict[str, Any]) -> None:
    _set_status(store, params, "running")


@on_failure("server.started")
def _start_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    """Back to where it was: off, or running for a failed reboot or reset of a running server."""
    _set_status(store, params, params.get("previous", "off"))


@on_complete("server.stopped")
def _stopped(store: Store, action: Doc, params: dict[str, Any]) -> None:
    _set_status(store, params, "off")


@on_failure("server.stopped")
def _stop_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    _set_status(store, params, params.get("previous", "running"))


@on_complete("server.type_changed")
def _type_changed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = _set_status(store, params, "off")
    if doc is not None:
        doc["_server_type"] = params["server_type"]
        if params["upgrade_disk"]:
            doc["primary_disk_size"] = params["disk"]
        store.put(KIND, doc)


@on_failure("server.type_changed")
def _type_change_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    _set_status(store, params, "off")


@on_complete("server.rebuilt")
def _rebuilt(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = _set_status(store, params, "running")
    if doc is not None:
        doc["_image"] = params["image"]
        store.put(KIND, doc)


@on_failure("server.rebuilt")
def _rebuild_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    _set_status(store, params, params["status"])


@on_complete("server.network_attached")
@on_complete("server.network_detached")
def _network_changed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    """Nothing left to do: ``private_net`` changed when the request was accepted."""


@on_failure("server.network_attached")
def _attach_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, params["server"])
    if doc is not None:
        doc["private_net"] = [e for e in doc["private_net"] if e["network"] != params["network"]]
        store.put(KIND, doc)


@on_failure("server.network_detached")
def _detach_failed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, params["server"])
    if doc is not None and not any(e["network"] == params["entry"]["network"] for e in doc["private_net"]):
        doc["private_net"].append(params["entry"])
        store.put(KIND, doc)


@subscribe("network.deleted")
def _network_deleted(cloud: Cloud, network: Doc, **_: Any) -> None:
    """A deleted network detaches its servers (the spec: attached resources are detached)."""
    for doc in cloud.store.all(KIND):
        if any(e["network"] == network["id"] for e in doc.get("private_net", [])):
            doc["private_net"] = [e for e in doc["private_net"] if e["network"] != network["id"]]
            cloud.store.put(KIND, doc)
    cloud.machines.remove_network(int(network["id"]))



def _make_machine(cloud: Cloud, server: Doc, create: Doc, start: Doc | None, attaches: list[Doc]) -> None:
    """Make the machine (networks included) for ``create`` and its attach actions, boot it for ``start``."""
    if not cloud.machines.real:
        return
    tie(cloud, [create, *attaches], cloud.machines.create_server(server_spec(cloud, server)))
    if start is not None:
        tie(cloud, [start], cloud.machines.boot(int(server["id"])))


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


def _is_id(value: Any) -> bool:
    """An id given as an integer or as a string of ASCII digits ("²".isdigit() is true, int("²") fails)."""
    text = str(value)
    return text.isascii() and text.isdigit()


def _id_list(body: Body, key: str) -> list[Any]:
    values = body.array(key, default=[])
    if values and any(isinstance(v, bool) or not isinstance(v, (int, str)) for v in values):
        body.problem(key, "must be a list of IDs")
        return []
    return list(values or [])


@route("POST", "/servers")
def create_server(req: Request) -> Reply:
    cloud = req.cloud
    store = cloud.store
    body = Body(req.body)
    name = body.name()
    type_ref = body.id_or_name("server_type", required=True)
    image_ref = body.id_or_name("image", required=True)
    location_ref = body.id_or_name("location")
    datacenter_ref = body.id_or_name("datacenter")
    start = body.boolean("start_after_create", default=True)
    ssh_key_refs = _id_list(body, "ssh_keys")
    volume_ids = _id_list(body, "volumes")
    network_ids = _id_list(body, "networks")
    firewall_items = body.array("firewalls", default=[])
    user_data = body.string("user_data")
    labels = body.labels()
    automount = body.boolean("automount", default=False)
    group_id = body.integer("placement_group")
    pn = body.object("public_net")
    enable_ipv4 = enable_ipv6 = True
    ipv4_id = ipv6_id = None
    if pn is not None:
        enable_ipv4 = pn.boolean("enable_ipv4", default=True)
        enable_ipv6 = pn.boolean("enable_ipv6", default=True)
        ipv4_id = pn.integer("ipv4", nullable=True)
        ipv6_id = pn.integer("ipv6", nullable=True)
        body.merge(pn)
    if user_data is not None and len(user_data.encode()) > USER_DATA_MAX:
        body.problem("user_data", "must be at most 32 KiB")
    firewall_ids: list[int] = []
    for item in firewall_items or []:
        fid = item.get("firewall") if isinstance(item, dict) else None
        if isinstance(fid, bool) or not isinstance(fid, int):
            body.problem("firewalls", 'each entry must be {"firewall": <id>}')
            break
        firewall_ids.append(fid)
    body.check()
    _ensure_hostname(name)

    # -- resolve references (invalid_input naming the field) ------------------------------
    st = cloud.catalog.server_type(type_ref)
    if st is None:
        raise errors.invalid_field("server_type", f"server type {type_ref} not found")
    location = None
    if location_ref is not None:
        loc = cloud.catalog.location(location_ref)
        if loc is None:
            raise errors.invalid_field("location", f"location {location_ref} not found")
        location = str(loc["name"])
    if datacenter_ref is not None:
        dc_ref = cloud.catalog.datacenter(datacenter_ref)
        if dc_ref is None:
            raise errors.invalid_field("datacenter", f"datacenter {datacenter_ref} not found")
        if location is not None and dc_ref["location"]["name"] != location:
            raise errors.invalid_field("datacenter", f"datacenter {datacenter_ref} is not in location {location}")
        location = str(dc_ref["location"]["name"])
    given_ips: dict[str, Doc] = {}
    for ip_type, pid, enabled in (("ipv4", ipv4_id, enable_ipv4), ("ipv6", ipv6_id, enable_ipv6)):
        if pid is None or not enabled:
            continue
        pip = store.get("primary_ip", pid)
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
        given_ips[ip_type] = pip
    vols: list[Doc] = []
    for vid in volume_ids:
        vol = store.get("volume", int(vid)) if _is_id(vid) else None
        if vol is None:
            raise errors.invalid_field("volumes", f"volume {vid} not found")
        if vol.get("server") is not None:
            raise errors.ApiError("volume_already_attached", f"volume {vid} is attached to server {vol['server']}")
        vol_location = _location_name(cloud, vol.get("_location"))
        if location is not None and vol_location is not None and vol_location != location:
            raise errors.invalid_field("volumes", f"volume {vid} is in {vol_location}, not {location}")
        location = location or vol_location
        vols.append(vol)
    if location is None:
        location = _pick_location(cloud, st)
    _ensure_orderable(cloud, st, location)
    image = images.resolve(cloud, image_ref, st["architecture"])
    if image["disk_size"] > st["disk"]:
        raise errors.invalid_field("image", f"image {image['id']} needs a disk of {image['disk_size']} GB,"
                                            f" server type {st['name']} has {st['disk']} GB")
    ssh_keys = [cloud.ref("ssh_key", ref, "ssh_keys") for ref in ssh_key_refs]
    nets: list[Doc] = []
    for nid in network_ids:
        net = store.get("network", int(nid)) if _is_id(nid) else None
        if net is None:
            raise errors.invalid_field("networks", f"network {nid} not found")
        networks.ensure_capacity(cloud, net)
        nets.append(net)
    fws: list[Doc] = []
    for fid in firewall_ids:
        fw = store.get("firewall", fid)
        if fw is None:
            raise errors.invalid_field("firewalls", f"firewall {fid} not found")
        fws.append(fw)
    group = None
    if group_id is not None:
        group = store.get("placement_group", group_id)
        if group is None:
            raise errors.invalid_field("placement_group", f"placement group {group_id} not found")
    if not enable_ipv4 and not enable_ipv6 and not nets:
        raise errors.invalid_field("networks", "a server without public IPs needs at least one network")

    # -- project guards -------------------------------------------------------------------
    cloud.ensure_limit("servers", KIND)
    cloud.ensure_unique_name(KIND, name)
    if group is not None:
        placement_groups.ensure_room(cloud, group)
    dc = cloud.catalog.datacenter_of(location)

    # -- create (nothing above changed any document) --------------------------------------
    ident = store.next_id(KIND)
    doc: Doc = {
        "id": ident, "name": name, "status": "initializing", "created": now_iso(),
        "labels": labels or {}, "protection": {"delete": False, "rebuild": False},
        "rescue_enabled": False, "backup_window": None, "primary_disk_size": st["disk"],
        "placement_group": group["id"] if group else None, "private_net": [],
        "public_net": {"_ipv4": None, "_ipv6": None},
        "_server_type": st["id"], "_datacenter": dc["id"], "_image": image["id"],
        "_user_data": user_data, "_ssh_keys": [k["id"] for k in ssh_keys], "_automount": automount,
    }
    store.put(KIND, doc)
    for ip_type, enabled in (("ipv4", enable_ipv4), ("ipv6", enable_ipv6)):
        if not enabled:
            continue
        pip = given_ips.get(ip_type) or primary_ips.new_doc(cloud, ip_type, location, auto_delete=True)
        pip["assignee_id"] = ident
        store.put("primary_ip", pip)
        doc["public_net"][primary_ips.server_slot(ip_type)] = pip["id"]
    attached = [_attach(cloud, doc, net, None, [], None) for net in nets]
    store.put(KIND, doc)
    for vol in vols:
        volumes.check_attachable(cloud, vol, doc, "volumes")
    for fw in fws:
        if not any(e.get("type") == "server" and (e.get("server") or {}).get("id") == ident
                   for e in fw.get("applied_to") or []):
            firewalls.apply_to_server(cloud, fw, doc)

    engine = cloud.engine
    action = engine.start("create_server", [(KIND, ident)], finish="server.created",
                          params={"server": ident, "start": start})
    next_actions: list[Doc] = []
    for entry in attached:
        next_actions.append(engine.start("attach_to_network", [(KIND, ident), ("network", entry["network"])],
                                         finish="server.network_attached", after=action,
                                         params={"server": ident, "network": entry["network"]}))
    attach_actions = list(next_actions)
    volume_attaches: list[tuple[int, Doc]] = []
    for vol in vols:
        next_actions.append(volumes.attach(cloud, vol, doc, automount=automount, after=action, host=False))
        volume_attaches.append((int(vol["id"]), next_actions[-1]))
    start_action = None
    if start:
        start_action = engine.start("start_server", [(KIND, ident)], finish="server.started", after=action,
                                    params={"server": ident})
        next_actions.insert(0, start_action)
    events.emit(cloud, "server.created", server=doc)
    _make_machine(cloud, doc, action, start_action, attach_actions)
    for vid, attach_action in volume_attaches:  # after the machine is made (and booted)
        tie(cloud, [attach_action], cloud.machines.attach_volume(vid, ident, bool(automount)))
    return Reply(201, {
        "server": render(cloud, doc), "action": cloud.action(action),
        "next_actions": [cloud.action(a) for a in next_actions],
        "root_password": None if ssh_keys else _password(cloud),
    })


# -- one server -----------------------------------------------------------------------------
def _server(req: Request) -> Doc:
    return req.cloud.get(KIND, req.id(), "server")


@route("GET", "/servers/{id}")
def get_server(req: Request) -> Reply:
    return Reply(200, {"server": render(req.cloud, _server(req))})


@route("PUT", "/servers/{id}")
def update_server(req: Request) -> Reply:
    cloud = req.cloud
    doc = _server(req)
    body = Body(req.body)
    name = body.name("name", required=False)
    labels = body.labels()
    body.check()
    _ensure_hostname(name)
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
    doc = _server(req)
    cloud.ensure_deletable(KIND, doc)
    action = cloud.engine.start("delete_server", [(KIND, doc["id"])])
    attached = [int(v["id"]) for v in cloud.store.all("volume") if v.get("server") == doc["id"]]
    cloud.store.delete(KIND, doc["id"])
    events.emit(cloud, "server.deleted", server=doc)  # volumes detach
    tie(cloud, [action], cloud.machines.delete_server(int(doc["id"]), attached))
    return cloud.action_reply(action, 200)


# -- actions --------------------------------------------------------------------------------
def _actionable(req: Request) -> Doc:
    """The server of an action request, unless another action holds it (locked)."""
    doc = _server(req)
    req.cloud.ensure_unlocked(KIND, doc["id"])
    return doc


_POWER_OPS = {"start_server": "poweron", "stop_server": "poweroff", "shutdown_server": "shutdown",
              "reboot_server": "reboot", "reset_server": "reset"}


def _power(req: Request, command: str, transitional: str | None, finish: str) -> Reply:
    cloud = req.cloud
    doc = _actionable(req)
    previous = doc["status"]
    if transitional is not None:
        doc["status"] = transitional
        cloud.store.put(KIND, doc)
    action = cloud.engine.start(command, [(KIND, doc["id"])], finish=finish,
                                params={"server": doc["id"], "previous": previous})
    tie(cloud, [action], cloud.machines.power(int(doc["id"]), _POWER_OPS[command]))
    return cloud.action_reply(action)


@route("POST", "/servers/{id}/actions/poweron")
def poweron(req: Request) -> Reply:
    doc = _server(req)
    return _power(req, "start_server", None if doc["status"] == "running" else "starting", "server.started")


@route("POST", "/servers/{id}/actions/poweroff")
def poweroff(req: Request) -> Reply:
    doc = _server(req)
    return _power(req, "stop_server", None if doc["status"] == "off" else "stopping", "server.stopped")


@route("POST", "/servers/{id}/actions/shutdown")
def shutdown(req: Request) -> Reply:
    doc = _server(req)
    return _power(req, "shutdown_server", None if doc["status"] == "off" else "stopping", "server.stopped")


@route("POST", "/servers/{id}/actions/reboot")
def reboot(req: Request) -> Reply:
    return _power(req, "reboot_server", None, "server.started")


@route("POST", "/servers/{id}/actions/reset")
def reset(req: Request) -> Reply:
    return _power(req, "reset_server", None, "server.started")


@route("POST", "/servers/{id}/actions/change_type")
def change_type(req: Request) -> Reply:
    cloud = req.cloud
    doc = _server(req)
    body = Body(req.body)
    type_ref = body.id_or_name("server_type", required=True)
    upgrade_disk = body.boolean("upgrade_disk", required=True)
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    st = cloud.catalog.server_type(type_ref)
    if st is None:
        raise errors.invalid_field("server_type", f"server type {type_ref} not found")
    _ensure_off(doc)
    current = server_type_of(cloud, doc)
    location = location_of(cloud, doc)["name"]
    _ensure_orderable(cloud, st, location, code="invalid_server_type")

    def unfit(why: str) -> errors.ApiError:
        return errors.ApiError("invalid_server_type", f"server type {st['name']} {why}", status=422)

    if st["id"] == current["id"]:
        raise unfit("is the server's current type")
    if st["architecture"] != current["architecture"]:
        raise unfit(f"has architecture {st['architecture']}, the server {current['architecture']}")
    if st["storage_type"] != current["storage_type"]:
        raise unfit(f"has {st['storage_type']} storage, the server {current['storage_type']}")
    if st["disk"] < doc["primary_disk_size"]:
        raise unfit(f"has a {st['disk']} GB disk, smaller than the server's {doc['primary_disk_size']} GB")
    doc["status"] = "migrating"
    cloud.store.put(KIND, doc)
    action = cloud.engine.start("change_server_type", [(KIND, doc["id"])], finish="server.type_changed",
                                params={"server": doc["id"], "server_type": st["id"],
                                        "upgrade_disk": upgrade_disk, "disk": st["disk"]})
    return cloud.action_reply(action)


@route("POST", "/servers/{id}/actions/attach_to_network")
def attach_to_network(req: Request) -> Reply:
    cloud = req.cloud
    doc = _server(req)
    body = Body(req.body)
    network_id = body.integer("network", required=True)
    ip = body.ip("ip")
    alias_ips = body.array("alias_ips", default=[], strings=True)
    ip_range = body.cidr("ip_range")
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    network = cloud.store.get("network", network_id)
    if network is None:
        raise errors.invalid_field("network", f"network {network_id} not found")
    if any(e["network"] == network_id for e in doc.get("private_net", [])):
        raise errors.ApiError("server_already_attached", f"server {doc['id']} is already attached to network"
                                                         f" {network_id}")
    entry = _attach(cloud, doc, network, ip, alias_ips, ip_range)
    cloud.store.put(KIND, doc)
    action = cloud.engine.start("attach_to_network", [(KIND, doc["id"]), ("network", network_id)],
                                finish="server.network_attached",
                                params={"server": doc["id"], "network": entry["network"]})
    card = nic(cloud, entry)
    if card is not None:
        tie(cloud, [action], cloud.machines.attach_network(int(doc["id"]), card))
    events.emit(cloud, "server.network_changed", server=doc)
    return cloud.action_reply(action)


def _attachment(doc: Doc, network_id: int) -> Doc:
    for entry in doc.get("private_net", []):
        if entry["network"] == network_id:
            return dict(entry)
    raise errors.ApiError("server_not_attached_to_network", f"server {doc['id']} is not attached to network"
                                                            f" {network_id}")


@route("POST", "/servers/{id}/actions/detach_from_network")
def detach_from_network(req: Request) -> Reply:
    cloud = req.cloud
    doc = _server(req)
    body = Body(req.body)
    network_id = body.integer("network", required=True)
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    entry = _attachment(doc, network_id)
    doc["private_net"] = [e for e in doc["private_net"] if e["network"] != network_id]
    cloud.store.put(KIND, doc)
    action = cloud.engine.start("detach_from_network", [(KIND, doc["id"]), ("network", network_id)],
                                finish="server.network_detached", params={"server": doc["id"], "entry": entry})
    tie(cloud, [action], cloud.machines.detach_network(int(doc["id"]), network_id))
    events.emit(cloud, "server.network_changed", server=doc)
    return cloud.action_reply(action)


@route("POST", "/servers/{id}/actions/change_alias_ips")
def change_alias_ips(req: Request) -> Reply:
    cloud = req.cloud
    doc = _server(req)
    body = Body(req.body)
    network_id = body.integer("network", required=True)
    alias_ips = body.array("alias_ips", required=True, strings=True)
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    _attachment(doc, network_id)
    network = cloud.store.get("network", network_id)
    if network is None:
        raise errors.invalid_field("network", f"network {network_id} not found")
    entry = next(e for e in doc["private_net"] if e["network"] == network_id)
    old = entry["alias_ips"]
    entry["alias_ips"] = []  # the server's own aliases do not count as taken
    try:
        zone = _network_zone(cloud, location_of(cloud, doc)["name"])
        entry["alias_ips"] = _aliases(cloud, _zone_network(network, zone), alias_ips, {entry["ip"]})
    except errors.ApiError:
        entry["alias_ips"] = old
        raise
    cloud.store.put(KIND, doc)
    action = cloud.engine.start("change_alias_ips", [(KIND, doc["id"]), ("network", network_id)])
    return cloud.action_reply(action)


@route("POST", "/servers/{id}/actions/change_dns_ptr")
def change_dns_ptr(req: Request) -> Reply:
    cloud = req.cloud
    doc = _server(req)
    body = Body(req.body)
    ip = body.ip("ip", required=True)
    dns_ptr = body.string("dns_ptr", max_len=255, nullable=True)
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    for pid in (doc["public_net"].get("_ipv4"), doc["public_net"].get("_ipv6")):
        pip = cloud.store.get("primary_ip", pid) if pid is not None else None
        if pip is not None and primary_ips.contains(pip, ip):
            primary_ips.set_dns_ptr(pip, ip, dns_ptr)
            cloud.store.put("primary_ip", pip)
            action = cloud.engine.start("change_dns_ptr", [(KIND, doc["id"])])
            return cloud.action_reply(action)
    raise errors.invalid_field("ip", f"{ip} is not a public IP of server {doc['id']}")


@route("POST", "/servers/{id}/actions/change_protection")
def change_server_protection(req: Request) -> Reply:
    return change_protection(req, KIND, ("delete", "rebuild"))


@route("POST", "/servers/{id}/actions/create_image")
def create_image(req: Request) -> Reply:
    cloud = req.cloud
    doc = _server(req)
    body = Body(req.body)
    image_type = body.string("type", default="snapshot", choices=("snapshot", "backup"))
    description = body.string("description", max_len=255)
    labels = body.labels()
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    if image_type == "backup" and doc["backup_window"] is None:
        raise errors.invalid_field("type", f"backups are not enabled for server {doc['id']}")
    arch = server_type_of(cloud, doc)["architecture"]
    image = images.create_from_server(cloud, doc, image_type, description, labels, arch)
    action = cloud.engine.start("create_image", [(KIND, doc["id"]), ("image", image["id"])],
                                finish="image.created", params={"image": image["id"]})
    tie(cloud, [action], cloud.machines.snapshot(int(doc["id"]), int(image["id"])))
    return Reply(201, {"image": images.render(image), "action": cloud.action(action)})


@route("POST", "/servers/{id}/actions/rebuild")
def rebuild(req: Request) -> Reply:
    cloud = req.cloud
    doc = _server(req)
    body = Body(req.body)
    image_ref = body.id_or_name("image", required=True)
    user_data = body.string("user_data")
    body.check()
    if doc["protection"]["rebuild"]:
        raise errors.protected(f"server {doc['id']} is rebuild-protected")
    cloud.ensure_unlocked(KIND, doc["id"])
    st = server_type_of(cloud, doc)
    image = images.resolve(cloud, image_ref, st["architecture"])
    if image["disk_size"] > doc["primary_disk_size"]:
        raise errors.invalid_field("image", f"image {image['id']} needs a disk of {image['disk_size']} GB")
    previous = doc["status"]
    doc["status"] = "rebuilding"
    if user_data is not None:
        doc["_user_data"] = user_data
    cloud.store.put(KIND, doc)
    action = cloud.engine.start("rebuild_server", [(KIND, doc["id"])], finish="server.rebuilt",
                                params={"server": doc["id"], "image": image["id"], "status": previous})
    if cloud.machines.real:
        tie(cloud, [action], cloud.machines.rebuild(int(doc["id"]), machine_image(cloud, image["id"]),
                                                    machine_keys(cloud, doc), doc.get("_user_data")))
    return Reply(201, {"action": cloud.action(action),
                       "root_password": None if doc.get("_ssh_keys") else _password(cloud)})


@route("POST", "/servers/{id}/actions/enable_backup")
def enable_backup(req: Request) -> Reply:
    cloud = req.cloud
    doc = _actionable(req)
    doc["backup_window"] = doc["backup_window"] or BACKUP_WINDOW
    cloud.store.put(KIND, doc)
    return cloud.action_reply(cloud.engine.start("enable_backup", [(KIND, doc["id"])]))


@route("POST", "/servers/{id}/actions/disable_backup")
def disable_backup(req: Request) -> Reply:
    cloud = req.cloud
    doc = _actionable(req)
    doc["backup_window"] = None
    cloud.store.put(KIND, doc)
    images.delete_backups(cloud, doc["id"])
    return cloud.action_reply(cloud.engine.start("disable_backup", [(KIND, doc["id"])]))


@route("POST", "/servers/{id}/actions/add_to_placement_group")
def add_to_placement_group(req: Request) -> Reply:
    cloud = req.cloud
    doc = _server(req)
    body = Body(req.body)
    group_id = body.integer("placement_group", required=True)
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    group = cloud.store.get("placement_group", group_id)
    if group is None:
        raise errors.invalid_field("placement_group", f"placement group {group_id} not found")
    _ensure_off(doc)
    if doc.get("placement_group") is not None:
        raise errors.ApiError("already_in_placement_group", f"server {doc['id']} is already in placement group"
                                                            f" {doc['placement_group']}", status=422)
    placement_groups.ensure_room(cloud, group)
    doc["placement_group"] = group_id
    cloud.store.put(KIND, doc)
    action = cloud.engine.start("add_to_placement_group", [(KIND, doc["id"]), ("placement_group", group_id)])
    return cloud.action_reply(action)


@route("POST", "/servers/{id}/actions/remove_from_placement_group")
def remove_from_placement_group(req: Request) -> Reply:
    cloud = req.cloud
    doc = _actionable(req)
    group_id = doc.get("placement_group")
    if group_id is None:
        raise errors.invalid_input(message=f"server {doc['id']} is not in a placement group")
    doc["placement_group"] = None
    cloud.store.put(KIND, doc)
    resources: list[tuple[str, int]] = [(KIND, doc["id"])]
    if cloud.store.get("placement_group", group_id) is not None:
        resources.append(("placement_group", group_id))
    return cloud.action_reply(cloud.engine.start("remove_from_placement_group", resources))


@route("POST", "/servers/{id}/actions/reset_password")
def reset_password(req: Request) -> Reply:
    cloud = req.cloud
    doc = _actionable(req)
    action = cloud.engine.start("reset_password", [(KIND, doc["id"])])
    return Reply(201, {"action": cloud.action(action), "root_password": _password(cloud)})


@route("POST", "/servers/{id}/actions/enable_rescue")
def enable_rescue(req: Request) -> Reply:
    cloud = req.cloud
    doc = _server(req)
    body = Body(req.body)
    body.string("type", default="linux64", choices=("linux64",))
    key_ids = body.array("ssh_keys", default=[])
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    for kid in key_ids:
        if isinstance(kid, bool) or not isinstance(kid, int) or cloud.store.get("ssh_key", kid) is None:
            raise errors.invalid_field("ssh_keys", f"SSH key {kid} not found")
    doc["rescue_enabled"] = True
    cloud.store.put(KIND, doc)
    action = cloud.engine.start("enable_rescue", [(KIND, doc["id"])])
    return Reply(201, {"action": cloud.action(action), "root_password": _password(cloud)})


@route("POST", "/servers/{id}/actions/disable_rescue")
def disable_rescue(req: Request) -> Reply:
    cloud = req.cloud
    doc = _actionable(req)
    doc["rescue_enabled"] = False
    cloud.store.put(KIND, doc)
    return cloud.action_reply(cloud.engine.start("disable_rescue", [(KIND, doc["id"])]))


@route("POST", "/servers/{id}/actions/request_console")
def request_console(req: Request) -> Reply:
    cloud = req.cloud
    doc = _actionable(req)
    action = cloud.engine.start("request_console", [(KIND, doc["id"])])
    token = _password(cloud, 32)
    return Reply(201, {"action": cloud.action(action), "password": _password(cloud),
                       "wss_url": f"wss://console.localcloud.invalid/?server_id={doc['id']}&token={token}"})


register_action_routes("servers", KIND)
