"""What follows a firewall's changes: other families' events, the filters on this machine
(``cloud.machines``, ``--hosts nspawn``), and completion and undo of its actions."""

from __future__ import annotations

from typing import Any

from localcloud.actions import on_complete, on_failure
from localcloud.api.firewalls.document import KIND, _direct_ids, firewalls_for_server
from localcloud.api.machine_specs import public_addresses, tie
from localcloud.cloud import Cloud
from localcloud.events import subscribe
from localcloud.machines import Guarded, Rule
from localcloud.store import Doc, Store


# -- other families' events ------------------------------------------------------------------
@subscribe("server.deleted")
def _server_deleted(cloud: Cloud, server: Doc, **_: Any) -> None:
    """A deleted server leaves every firewall it was applied to directly."""
    for firewall in cloud.store.all(KIND):
        if server["id"] in _direct_ids(firewall):
            firewall["applied_to"] = [e for e in firewall["applied_to"]
                                      if not (e["type"] == "server" and e["server"]["id"] == server["id"])]
            cloud.store.put(KIND, firewall)


# -- the filters on this machine (--hosts nspawn) ----------------------------------------------
def guarded_servers(cloud: Cloud) -> list[Guarded]:
    """Every server with a public address and at least one firewall, with all their rules."""
    out = []
    for server in cloud.store.all("server"):
        ipv4, ipv6 = public_addresses(cloud, server)
        applied = firewalls_for_server(cloud, server)
        if not applied or (ipv4 is None and ipv6 is None):
            continue
        rules = []
        for fid in applied:
            for r in (cloud.store.get(KIND, fid) or {}).get("rules", []):
                ips = r["source_ips"] if r["direction"] == "in" else r["destination_ips"]
                rules.append(Rule(r["direction"], r["protocol"], r.get("port"), tuple(ips)))
        out.append(Guarded(int(server["id"]), ipv4, ipv6, tuple(rules)))
    return out


def machines_follow(cloud: Cloud, actions: list[Doc] | tuple[Doc, ...] = ()) -> None:
    """Rules or where they apply changed (or a server, its labels or addresses): the filters on
    this machine follow; ``actions`` (apply_firewall, set_firewall_rules, ...) end when they do."""
    if cloud.machines.real:
        tie(cloud, actions, cloud.machines.set_firewalls(guarded_servers(cloud)))


@subscribe("server.created")
@subscribe("server.deleted")
@subscribe("server.labels_changed")
@subscribe("server.public_net_changed")
def _server_changed(cloud: Cloud, server: Doc, **_: Any) -> None:
    machines_follow(cloud)


# -- completion and undo when an action fails (fault injection) ------------------------------
def _done(store: Store, action: Doc, params: dict[str, Any]) -> None:
    """The change was made in the request; success has nothing left to do."""


for _name in ("apply", "remove", "set_rules"):
    on_complete(f"firewall.{_name}")(_done)


@on_failure("firewall.apply")
def _undo_apply(store: Store, action: Doc, params: dict[str, Any]) -> None:
    if (doc := store.get(KIND, int(params["firewall"]))) is not None:
        doc["applied_to"] = [e for e in doc["applied_to"] if e != params["entry"]]
        store.put(KIND, doc)


@on_failure("firewall.remove")
def _undo_remove(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, int(params["firewall"]))
    entry = params["entry"]
    if doc is None or entry in doc["applied_to"]:
        return
    if entry["type"] == "server" and store.get("server", entry["server"]["id"]) is None:
        return  # the server is gone meanwhile
    doc["applied_to"].append(entry)
    store.put(KIND, doc)


@on_failure("firewall.set_rules")
def _undo_set_rules(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, int(params["firewall"]))
    if doc is not None and doc["rules"] == params["new"]:
        doc["rules"] = params["old"]
        store.put(KIND, doc)
