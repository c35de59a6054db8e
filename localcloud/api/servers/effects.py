"""What follows a server's actions and events: final statuses when actions complete or fail,
networks that go, and the machine made for a created server (``cloud.machines``)."""

from __future__ import annotations

from typing import Any

from localcloud.actions import on_complete, on_failure
from localcloud.api.machine_specs import server_spec, tie
from localcloud.api.servers.document import KIND
from localcloud.cloud import Cloud
from localcloud.events import subscribe
from localcloud.store import Doc, Store


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



def make_machine(cloud: Cloud, server: Doc, create: Doc, start: Doc | None, attaches: list[Doc]) -> None:
    """Make the machine (networks included) for ``create`` and its attach actions, boot it for ``start``."""
    if not cloud.machines.real:
        return
    tie(cloud, [create, *attaches], cloud.machines.create_server(server_spec(cloud, server)))
    if start is not None:
        tie(cloud, [start], cloud.machines.boot(int(server["id"])))


