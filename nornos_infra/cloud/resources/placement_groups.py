"""Spread placement groups: at most 10 servers each, so no two land on one host."""

from __future__ import annotations

from typing import Any

from nornos_infra.cloud.model import Desired, Observed
from nornos_infra.cloud.resources.base import Ctx, Index, Kind, Verdict


class PlacementGroups(Kind):
    kind, path, key = "placement_group", "/placement_groups", "placement_groups"
    protection_keys = ()

    def settings(self, raw: dict[str, Any], index: Index) -> dict[str, Any]:
        return {"type": raw["type"], "servers": sorted(raw.get("servers") or [])}

    def compare(self, want: Desired, have: Observed, index: Index, verdict: Verdict) -> None:
        if want.settings["type"] != have.settings["type"]:
            verdict.replace(f"type {have.settings['type']} -> {want.settings['type']}")

    def create(self, ctx: Ctx, want: Desired) -> int:
        body = {"name": want.name, "type": want.settings["type"], "labels": want.labels}
        data, _ = self.create_or_adopt(
            ctx, want, lambda: ctx.conn.request("POST", self.path, f"create placement group {want.name}", json=body),
            "placement_group")
        ident = int(data["placement_group"]["id"])
        ctx.index.add(self.kind, want.name, ident)
        return ident

    def delete(self, ctx: Ctx, have: Observed, force: bool) -> None:
        ctx.conn.request("DELETE", f"{self.path}/{have.id}", f"delete placement group {have.name}")
