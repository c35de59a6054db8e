"""What follows a load balancer's changes: completion handlers, other families' events, and
the real load balancer (``cloud.machines``, ``--hosts nspawn``)."""

from __future__ import annotations

import copy
from typing import Any

from localcloud.actions import on_complete, on_failure
from localcloud.api.load_balancers.document import KIND, target_addresses
from localcloud.api.machine_specs import tie
from localcloud.cloud import Cloud
from localcloud.events import subscribe
from localcloud.machines import HealthCheck, LbNic, LbSpec, Service, Target
from localcloud.store import Doc, Store


# -- actions that change the document ---------------------------------------------------------
@on_complete("load_balancer.changed")
def _changed(store: Store, action: Doc, params: dict[str, Any]) -> None:
    """Nothing left to do: the change was applied when the request was accepted."""


@on_failure("load_balancer.changed")
def _restore(store: Store, action: Doc, params: dict[str, Any]) -> None:
    doc = store.get(KIND, params["load_balancer"])
    if doc is not None:
        doc.update(params["before"])
        store.put(KIND, doc)


def start_change(cloud: Cloud, lb: Doc, command: str, fields: tuple[str, ...], *,
            extra: list[tuple[str, int]] | None = None, duration_key: str | None = None) -> Doc:
    """Snapshot ``fields`` (restored if the action fails); the caller then mutates ``lb``."""
    before = {f: copy.deepcopy(lb[f]) for f in fields}
    return cloud.engine.start(command, [(KIND, lb["id"]), *(extra or [])], finish="load_balancer.changed",
                              params={"load_balancer": lb["id"], "before": before}, duration_key=duration_key)


@subscribe("server.deleted")
def _server_deleted(cloud: Cloud, server: Doc, **_: Any) -> None:
    """A deleted server stops being a target."""
    for lb in cloud.store.all(KIND):
        kept = [t for t in lb["targets"] if not (t["type"] == "server" and t["server"]["id"] == server["id"])]
        if len(kept) != len(lb["targets"]):
            lb["targets"] = kept
            cloud.store.put(KIND, lb)


@subscribe("network.deleted")
def _network_deleted(cloud: Cloud, network: Doc, **_: Any) -> None:
    for lb in cloud.store.all(KIND):
        kept = [e for e in lb.get("private_net") or [] if e["network"] != network["id"]]
        if len(kept) != len(lb.get("private_net") or []):
            lb["private_net"] = kept
            cloud.store.put(KIND, lb)
            machines_follow(cloud, lb)  # its NIC on the network goes, and targets through it



# -- the real load balancer (--hosts nspawn) ---------------------------------------------------
def _service_spec(s: Doc) -> Service:
    hc, http = s["health_check"], s.get("http") or {}
    hch = hc.get("http") or {}
    health = HealthCheck(hc["protocol"], int(hc["port"]), int(hc["interval"]), int(hc["timeout"]),
                         int(hc["retries"]), hch.get("path") or "/", hch.get("domain"),
                         tuple(hch.get("status_codes") or ()), hch.get("response") or "", bool(hch.get("tls")))
    return Service(s["protocol"], int(s["listen_port"]), int(s["destination_port"]), health,
                   bool(s.get("proxyprotocol")), bool(http.get("sticky_sessions")),
                   http.get("cookie_name") or "HCLBSTICKY", int(http.get("cookie_lifetime") or 300),
                   int(http.get("timeout_idle") or 50), bool(http.get("redirect_http")))


def lb_spec(cloud: Cloud, lb: Doc) -> LbSpec:
    """What the machine side makes of a load balancer: its addresses, services with their
    health checks, and the target addresses as of now (label selectors resolved)."""
    nics = []
    for entry in lb.get("private_net") or []:
        net = cloud.store.get("network", entry["network"])
        if net is not None:
            nics.append(LbNic(int(net["id"]), str(net["ip_range"]), str(entry["ip"])))
    pn = lb["public_net"]
    enabled = bool(pn.get("enabled"))
    return LbSpec(int(lb["id"]), lb["algorithm"]["type"], pn["ipv4"]["ip"] if enabled else None,
                  pn["ipv6"]["ip"] if enabled else None, tuple(nics), tuple(_service_spec(s) for s in lb["services"]),
                  tuple(Target(name, ip) for name, ip in target_addresses(cloud, lb)))


def machines_follow(cloud: Cloud, lb: Doc, actions: list[Doc] | tuple[Doc, ...] = ()) -> None:
    """The load balancer's proxy follows its document (created, services, targets, networks,
    algorithm, public interface); ``actions`` end when it does."""
    if cloud.machines.real and cloud.store.get(KIND, lb["id"]) is not None:
        tie(cloud, actions, cloud.machines.set_load_balancer(lb_spec(cloud, lb)))


def all_follow(cloud: Cloud) -> None:
    """Servers changed (created, deleted, labels, networks, addresses): every load balancer's
    targets are resolved again; the machine side changes nothing where nothing changed."""
    if cloud.machines.real:
        for lb in cloud.store.all(KIND):
            machines_follow(cloud, lb)


@subscribe("server.created")
@subscribe("server.deleted")
@subscribe("server.labels_changed")
@subscribe("server.network_changed")
@subscribe("server.public_net_changed")
def _targets_changed(cloud: Cloud, server: Doc, **_: Any) -> None:
    all_follow(cloud)

