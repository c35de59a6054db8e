"""The load balancer: on the private network, k3s nodes as targets by label selector over
private IPs, one TCP service per port with a health check."""

from __future__ import annotations

from typing import Any

from hcloud import APIException

from nornos_infra.cloud.model import Change, Desired, Observed, Step
from nornos_infra.cloud.resources.base import Ctx, Index, Kind, Verdict
from nornos_infra.errors import UserError

SERVICE_FIELDS = ("protocol", "listen_port", "destination_port", "proxyprotocol")
CHECK_FIELDS = ("protocol", "port", "interval", "timeout", "retries")


def normalize_service(s: dict[str, Any]) -> dict[str, Any]:
    out = {k: s.get(k) for k in SERVICE_FIELDS}
    out["health_check"] = {k: (s.get("health_check") or {}).get(k) for k in CHECK_FIELDS}
    return out


def normalize_target(t: dict[str, Any]) -> dict[str, Any]:
    if t["type"] == "label_selector":
        return {"type": "label_selector", "selector": t["label_selector"]["selector"],
                "use_private_ip": bool(t.get("use_private_ip"))}
    if t["type"] == "server":
        return {"type": "server", "server": t["server"]["id"], "use_private_ip": bool(t.get("use_private_ip"))}
    return {"type": t["type"], "ip": (t.get("ip") or {}).get("ip")}


def target_body(t: dict[str, Any]) -> dict[str, Any]:
    if t["type"] == "label_selector":
        return {"type": "label_selector", "label_selector": {"selector": t["selector"]},
                "use_private_ip": t["use_private_ip"]}
    if t["type"] == "server":
        return {"type": "server", "server": {"id": t["server"]}, "use_private_ip": t["use_private_ip"]}
    return {"type": "ip", "ip": {"ip": t["ip"]}}


class LoadBalancers(Kind):
    kind, path, key = "load_balancer", "/load_balancers", "load_balancers"

    def settings(self, raw: dict[str, Any], index: Index) -> dict[str, Any]:
        return {
            "type": raw["load_balancer_type"]["name"],
            "location": (raw.get("location") or {}).get("name"),
            "algorithm": (raw.get("algorithm") or {}).get("type"),
            "networks": sorted(index.name("network", p["network"]) or str(p["network"])
                               for p in raw.get("private_net", [])),
            "services": sorted((normalize_service(s) for s in raw.get("services", [])),
                               key=lambda s: s["listen_port"]),
            "targets": [normalize_target(t) for t in raw.get("targets", [])],
            "public_ipv4": ((raw.get("public_net") or {}).get("ipv4") or {}).get("ip"),
            "private_ips": {index.name("network", p["network"]) or str(p["network"]): p["ip"]
                            for p in raw.get("private_net", [])},
        }

    def summary(self, want: Desired) -> str:
        w = want.settings
        ports = ", ".join(str(s["listen_port"]) for s in w["services"])
        return f"{w['type']} in {w['location']} on {', '.join(w['networks'])}, tcp {ports} to the k3s nodes"

    def compare(self, want: Desired, have: Observed, index: Index, verdict: Verdict) -> None:
        w, h = want.settings, have.settings
        if h["location"] != w["location"]:
            verdict.replace(f"location {h['location']} -> {w['location']}")
            return
        if w["type"] != h["type"]:
            verdict.step("change_type", f"type {h['type']} -> {w['type']}", type=w["type"])
        if w["algorithm"] != h["algorithm"]:
            verdict.step("change_algorithm", f"algorithm {h['algorithm']} -> {w['algorithm']}",
                         algorithm=w["algorithm"])
        for network in w["networks"]:
            if network not in h["networks"]:
                verdict.step("attach_network", f"attach to network {network}", network=network)
        have_services = {s["listen_port"]: s for s in h["services"]}
        want_services = {s["listen_port"]: normalize_service(s) for s in w["services"]}
        for port, service in sorted(want_services.items()):
            if port not in have_services:
                verdict.step("add_service", f"add service {port}", service=w_service(w, port))
            elif have_services[port] != service:
                verdict.step("update_service", f"update service {port}", service=w_service(w, port))
        for port in sorted(set(have_services) - set(want_services)):
            verdict.step("delete_service", f"delete service {port}", listen_port=port)
        want_targets = [normalize_target(target_body(t)) for t in w["targets"]]
        for target in want_targets:
            if target not in h["targets"]:
                verdict.step("add_target", f"add target {_describe(target)}", target=target)
        for target in h["targets"]:
            if target not in want_targets:
                verdict.step("remove_target", f"remove target {_describe(target)}", target=target)

    def create(self, ctx: Ctx, want: Desired) -> int:
        w = want.settings
        body = {"name": want.name, "load_balancer_type": w["type"], "location": w["location"],
                "algorithm": {"type": w["algorithm"]}, "labels": want.labels, "services": w["services"],
                "targets": [target_body(t) for t in w["targets"]], "public_interface": True,
                "network": ctx.index.id("network", w["networks"][0])}
        try:
            data, adopted = self.create_or_adopt(
                ctx, want, lambda: ctx.conn.request("POST", self.path, f"create load balancer {want.name}",
                                                    json=body), "load_balancer")
        except APIException as exc:
            if exc.code == "resource_unavailable":
                raise UserError(f"load balancer {want.name}: {exc.message}; try another type or location") from None
            raise
        ident = int(data["load_balancer"]["id"])
        ctx.index.add(self.kind, want.name, ident)
        if not adopted:
            ctx.wait(data.get("action"))
        if want.protect:
            self.set_protection(ctx, ident, True)
        return ident

    def apply_step(self, ctx: Ctx, change: Change, step: Step) -> None:
        assert change.observed is not None
        base = f"{self.path}/{change.observed.id}/actions"
        d = step.detail
        calls: dict[str, tuple[str, dict[str, Any]]] = {
            "change_type": ("change_type", {"load_balancer_type": d.get("type")}),
            "change_algorithm": ("change_algorithm", {"type": d.get("algorithm")}),
            "add_service": ("add_service", d.get("service", {})),
            "update_service": ("update_service", d.get("service", {})),
            "delete_service": ("delete_service", {"listen_port": d.get("listen_port")}),
            "add_target": ("add_target", target_body(d["target"]) if "target" in d else {}),
            "remove_target": ("remove_target", target_body(d["target"]) if "target" in d else {}),
        }
        if step.what == "attach_network":
            endpoint, body = "attach_to_network", {"network": ctx.index.id("network", d["network"])}
        else:
            endpoint, body = calls[step.what]
        data = ctx.conn.request("POST", f"{base}/{endpoint}", f"{step.what} on {change.name}", json=body)
        ctx.wait(data.get("action"))

    def delete(self, ctx: Ctx, have: Observed, force: bool) -> None:
        self.lift_protection(ctx, have, force)
        # 204 without a body (Hetzner's OpenAPI document): gone at once, no action to wait for
        ctx.conn.request("DELETE", f"{self.path}/{have.id}", f"delete load balancer {have.name}")


def w_service(settings: dict[str, Any], port: int) -> dict[str, Any]:
    return next(s for s in settings["services"] if s["listen_port"] == port)


def _describe(target: dict[str, Any]) -> str:
    if target["type"] == "label_selector":
        return f"selector {target['selector']}"
    return f"{target['type']} {target.get('server') or target.get('ip')}"
