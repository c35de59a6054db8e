"""The private network and its subnet. Growing the range is an in-place change; moving or
shrinking it would cut every server off, so that is a replacement the user must confirm."""

from __future__ import annotations

import ipaddress
from typing import Any

from nornos_infra.cloud.model import Change, Desired, Observed, Step
from nornos_infra.cloud.resources.base import Ctx, Index, Kind, Verdict


def _subnet_key(s: dict[str, Any]) -> tuple[str, str, str]:
    return (s["type"], s["ip_range"], s["network_zone"])


class Networks(Kind):
    kind, path, key = "network", "/networks", "networks"

    def settings(self, raw: dict[str, Any], index: Index) -> dict[str, Any]:
        subnets = [{"type": s["type"], "ip_range": s["ip_range"], "network_zone": s["network_zone"]}
                   for s in raw.get("subnets", [])]
        return {"ip_range": raw["ip_range"], "subnets": sorted(subnets, key=_subnet_key)}

    def summary(self, want: Desired) -> str:
        subnets = ", ".join(s["ip_range"] for s in want.settings["subnets"])
        return f"{want.settings['ip_range']}, subnet {subnets}"

    def compare(self, want: Desired, have: Observed, index: Index, verdict: Verdict) -> None:
        w_range, h_range = want.settings["ip_range"], have.settings["ip_range"]
        if w_range != h_range:
            w, h = ipaddress.ip_network(w_range), ipaddress.ip_network(h_range)
            if h.subnet_of(w) and w.network_address == h.network_address:  # type: ignore[arg-type]
                verdict.step("change_ip_range", f"ip_range {h_range} -> {w_range} (grow)", ip_range=w_range)
            else:
                verdict.replace(f"ip_range {h_range} -> {w_range} cannot be changed in place")
                return
        have_subnets = {_subnet_key(s) for s in have.settings["subnets"]}
        want_subnets = {_subnet_key(s) for s in want.settings["subnets"]}
        for t, r, z in sorted(want_subnets - have_subnets):
            verdict.step("add_subnet", f"add subnet {r}", subnet={"type": t, "ip_range": r, "network_zone": z})
        for _, r, _ in sorted(have_subnets - want_subnets):
            verdict.step("delete_subnet", f"remove subnet {r}", ip_range=r)

    def create(self, ctx: Ctx, want: Desired) -> int:
        body = {"name": want.name, "ip_range": want.settings["ip_range"], "subnets": want.settings["subnets"],
                "labels": want.labels}
        data, _ = self.create_or_adopt(
            ctx, want, lambda: ctx.conn.request("POST", self.path, f"create network {want.name}", json=body),
            "network")
        ident = int(data["network"]["id"])
        ctx.index.add(self.kind, want.name, ident)
        if want.protect and not data["network"].get("protection", {}).get("delete"):
            self.set_protection(ctx, ident, True)
        return ident

    def apply_step(self, ctx: Ctx, change: Change, step: Step) -> None:
        assert change.observed is not None
        ident = change.observed.id
        base = f"{self.path}/{ident}/actions"
        if step.what == "change_ip_range":
            data = ctx.conn.request("POST", f"{base}/change_ip_range", f"grow network {change.name}",
                                    json={"ip_range": step.detail["ip_range"]})
        elif step.what == "add_subnet":
            data = ctx.conn.request("POST", f"{base}/add_subnet", f"add subnet to {change.name}",
                                    json=step.detail["subnet"])
        elif step.what == "delete_subnet":
            data = ctx.conn.request("POST", f"{base}/delete_subnet", f"delete subnet of {change.name}",
                                    json={"ip_range": step.detail["ip_range"]})
        else:
            raise NotImplementedError(step.what)
        ctx.wait(data.get("action"))

    def delete(self, ctx: Ctx, have: Observed, force: bool) -> None:
        self.lift_protection(ctx, have, force)
        ctx.conn.request("DELETE", f"{self.path}/{have.id}", f"delete network {have.name}")
