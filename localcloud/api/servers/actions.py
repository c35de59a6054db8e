"""The server actions: power, type, networks, DNS, protection, images, backups, placement,
password, rescue, console."""

from __future__ import annotations

import localcloud.api.images as images
import localcloud.api.placement_groups as placement_groups
import localcloud.api.primary_ips as primary_ips
from localcloud import errors, events
from localcloud.api.common import change_protection, register_action_routes
from localcloud.api.machine_specs import image_ref as machine_image
from localcloud.api.machine_specs import nic, tie
from localcloud.api.machine_specs import ssh_keys as machine_keys
from localcloud.api.servers.document import (
    BACKUP_WINDOW,
    KIND,
    allocate_aliases,
    attach_network,
    ensure_off,
    ensure_orderable,
    location_of,
    network_zone,
    new_password,
    server_of,
    server_type_of,
    zone_network,
)
from localcloud.router import Reply, Request, route
from localcloud.store import Doc
from localcloud.validate import Body


# -- actions --------------------------------------------------------------------------------
def actionable(req: Request) -> Doc:
    """The server of an action request, unless another action holds it (locked)."""
    doc = server_of(req)
    req.cloud.ensure_unlocked(KIND, doc["id"])
    return doc


POWER_OPS = {"start_server": "poweron", "stop_server": "poweroff", "shutdown_server": "shutdown",
              "reboot_server": "reboot", "reset_server": "reset"}


def _power(req: Request, command: str, transitional: str | None, finish: str) -> Reply:
    cloud = req.cloud
    doc = actionable(req)
    previous = doc["status"]
    if transitional is not None:
        doc["status"] = transitional
        cloud.store.put(KIND, doc)
    action = cloud.engine.start(command, [(KIND, doc["id"])], finish=finish,
                                params={"server": doc["id"], "previous": previous})
    tie(cloud, [action], cloud.machines.power(int(doc["id"]), POWER_OPS[command]))
    return cloud.action_reply(action)


@route("POST", "/servers/{id}/actions/poweron")
def poweron(req: Request) -> Reply:
    doc = server_of(req)
    return _power(req, "start_server", None if doc["status"] == "running" else "starting", "server.started")


@route("POST", "/servers/{id}/actions/poweroff")
def poweroff(req: Request) -> Reply:
    doc = server_of(req)
    return _power(req, "stop_server", None if doc["status"] == "off" else "stopping", "server.stopped")


@route("POST", "/servers/{id}/actions/shutdown")
def shutdown(req: Request) -> Reply:
    doc = server_of(req)
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
    doc = server_of(req)
    body = Body(req.body)
    type_ref = body.id_or_name("server_type", required=True)
    upgrade_disk = body.boolean("upgrade_disk", required=True)
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    st = cloud.products.server_type(type_ref)
    if st is None:
        raise errors.invalid_field("server_type", f"server type {type_ref} not found")
    ensure_off(doc)
    current = server_type_of(cloud, doc)
    location = location_of(cloud, doc)["name"]
    ensure_orderable(cloud, st, location, code="invalid_server_type")

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
    doc = server_of(req)
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
    entry = attach_network(cloud, doc, network, ip, alias_ips, ip_range)
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
    doc = server_of(req)
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
    doc = server_of(req)
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
        zone = network_zone(cloud, location_of(cloud, doc)["name"])
        entry["alias_ips"] = allocate_aliases(cloud, zone_network(network, zone), alias_ips, {entry["ip"]})
    except errors.ApiError:
        entry["alias_ips"] = old
        raise
    cloud.store.put(KIND, doc)
    action = cloud.engine.start("change_alias_ips", [(KIND, doc["id"]), ("network", network_id)])
    return cloud.action_reply(action)


@route("POST", "/servers/{id}/actions/change_dns_ptr")
def change_dns_ptr(req: Request) -> Reply:
    cloud = req.cloud
    doc = server_of(req)
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
    doc = server_of(req)
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
    doc = server_of(req)
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
                       "root_password": None if doc.get("_ssh_keys") else new_password(cloud)})


@route("POST", "/servers/{id}/actions/enable_backup")
def enable_backup(req: Request) -> Reply:
    cloud = req.cloud
    doc = actionable(req)
    doc["backup_window"] = doc["backup_window"] or BACKUP_WINDOW
    cloud.store.put(KIND, doc)
    return cloud.action_reply(cloud.engine.start("enable_backup", [(KIND, doc["id"])]))


@route("POST", "/servers/{id}/actions/disable_backup")
def disable_backup(req: Request) -> Reply:
    cloud = req.cloud
    doc = actionable(req)
    doc["backup_window"] = None
    cloud.store.put(KIND, doc)
    images.delete_backups(cloud, doc["id"])
    return cloud.action_reply(cloud.engine.start("disable_backup", [(KIND, doc["id"])]))


@route("POST", "/servers/{id}/actions/add_to_placement_group")
def add_to_placement_group(req: Request) -> Reply:
    cloud = req.cloud
    doc = server_of(req)
    body = Body(req.body)
    group_id = body.integer("placement_group", required=True)
    body.check()
    cloud.ensure_unlocked(KIND, doc["id"])
    group = cloud.store.get("placement_group", group_id)
    if group is None:
        raise errors.invalid_field("placement_group", f"placement group {group_id} not found")
    ensure_off(doc)
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
    doc = actionable(req)
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
    doc = actionable(req)
    action = cloud.engine.start("reset_password", [(KIND, doc["id"])])
    return Reply(201, {"action": cloud.action(action), "root_password": new_password(cloud)})


@route("POST", "/servers/{id}/actions/enable_rescue")
def enable_rescue(req: Request) -> Reply:
    cloud = req.cloud
    doc = server_of(req)
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
    return Reply(201, {"action": cloud.action(action), "root_password": new_password(cloud)})


@route("POST", "/servers/{id}/actions/disable_rescue")
def disable_rescue(req: Request) -> Reply:
    cloud = req.cloud
    doc = actionable(req)
    doc["rescue_enabled"] = False
    cloud.store.put(KIND, doc)
    return cloud.action_reply(cloud.engine.start("disable_rescue", [(KIND, doc["id"])]))


@route("POST", "/servers/{id}/actions/request_console")
def request_console(req: Request) -> Reply:
    cloud = req.cloud
    doc = actionable(req)
    action = cloud.engine.start("request_console", [(KIND, doc["id"])])
    token = new_password(cloud, 32)
    return Reply(201, {"action": cloud.action(action), "password": new_password(cloud),
                       "wss_url": f"wss://console.localcloud.invalid/?server_id={doc['id']}&token={token}"})


register_action_routes("servers", KIND)
