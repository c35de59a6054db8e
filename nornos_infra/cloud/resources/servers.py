"""Servers of each pool. A changed type is a planned resize (power off, change_type, power
on); a server that is off is powered on (running is part of the desired state); a server in
a location the spec no longer allows is replaced; the image only matters when a server is
created (existing servers are never rebuilt behind anyone's back).

Each new server gets an SSH host key made here (nornos_infra/host_keys.py): the private half
in its user_data, the public half in its label. user_data exists only at create time (the
API never returns it), so it is not compared: an existing server is never replaced for it."""

from __future__ import annotations

from typing import Any

from hcloud import APIException

from nornos_infra import host_keys
from nornos_infra.cloud.model import Change, Desired, Observed, Op, Step
from nornos_infra.cloud.resources.base import Ctx, Index, Kind, Verdict
from nornos_infra.errors import UserError


class Servers(Kind):
    kind, path, key = "server", "/servers", "servers"
    protection_keys = ("delete", "rebuild")

    def settings(self, raw: dict[str, Any], index: Index) -> dict[str, Any]:
        location = (raw.get("location") or (raw.get("datacenter") or {}).get("location") or {}).get("name")
        networks = [index.name("network", p["network"]) or str(p["network"]) for p in raw.get("private_net", [])]
        return {
            "server_type": raw["server_type"]["name"],
            "memory_gb": raw["server_type"].get("memory"),
            "image": (raw.get("image") or {}).get("name"),
            "location": location,
            "networks": sorted(networks),
            "placement_group": (raw.get("placement_group") or {}).get("name"),
            "status": raw.get("status"),
            "public_ipv4": ((raw.get("public_net") or {}).get("ipv4") or {}).get("ip"),
            "private_ips": {index.name("network", p["network"]) or str(p["network"]): p["ip"]
                            for p in raw.get("private_net", [])},
            "host_key": host_keys.from_label((raw.get("labels") or {}).get(host_keys.LABEL)),
        }

    def summary(self, want: Desired) -> str:
        w = want.settings
        return f"{w['server_type']} in {w['location']}, {w['image']}, group {w['placement_group']}"

    def compare(self, want: Desired, have: Observed, index: Index, verdict: Verdict) -> None:
        w, h = want.settings, have.settings
        allowed = [w["location"], *w["fallback_locations"]]
        if h["location"] not in allowed:
            verdict.replace(f"location {h['location']} -> {w['location']}")
            return
        if w["server_type"] != h["server_type"]:
            verdict.step("resize", f"server type {h['server_type']} -> {w['server_type']} (power off, "
                         "change type, power on)", op=Op.RESIZE, server_type=w["server_type"])
        elif h["status"] == "off":
            # the power state is desired state: every server runs (a failed start_server, a
            # shutdown by hand); a resize already ends with power on
            verdict.step("power_on", "power on (the server is off)")
        for network in w["networks"]:
            if network not in h["networks"]:
                verdict.step("attach_network", f"attach to network {network}", network=network)
        if h["image"] and w["image"] != h["image"]:
            verdict.notes.append(f"server {want.name} runs {h['image']}, the spec says {w['image']}: existing "
                                 "servers are not rebuilt; rebuild or replace it deliberately")
        if w["placement_group"] != h["placement_group"]:
            verdict.notes.append(f"server {want.name} is in placement group {h['placement_group'] or 'none'}, the "
                                 f"spec implies {w['placement_group']}: moving needs a power-off, not done "
                                 "automatically")

    def create(self, ctx: Ctx, want: Desired) -> int:
        w = want.settings
        # one key for every attempt below: a retried POST whose first reply was lost creates the
        # server with this key, and adopting it keeps the label it was created with
        host_key = host_keys.generate()
        body: dict[str, Any] = {
            "name": want.name, "server_type": w["server_type"], "image": w["image"],
            "labels": {**want.labels, host_keys.LABEL: host_key.label_value},
            "user_data": host_keys.cloud_config(host_key),
            "ssh_keys": [ctx.index.id("ssh_key", k) for k in w["ssh_keys"]],
            "networks": [ctx.index.id("network", n) for n in w["networks"]],
            "placement_group": ctx.index.id("placement_group", w["placement_group"]),
            "public_net": {"enable_ipv4": True, "enable_ipv6": True},
            "start_after_create": True,
        }
        data: dict[str, Any] | None = None
        adopted = False
        for location in [w["location"], *w["fallback_locations"]]:
            body["location"] = location
            try:
                data, adopted = self.create_or_adopt(
                    ctx, want, lambda: ctx.conn.request("POST", self.path, f"create server {want.name}", json=body),
                    "server")
                break
            except APIException as exc:
                if exc.code != "resource_unavailable":
                    raise
                ctx.log(f"{w['server_type']} is unavailable in {location}: {exc.message}")
        if data is None:
            raise UserError(f"server {want.name}: {w['server_type']} is unavailable in "
                            f"{', '.join([w['location'], *w['fallback_locations']])}; choose another server type "
                            "or add a fallback location of the same network zone")
        ident = int(data["server"]["id"])
        ctx.index.add(self.kind, want.name, ident)
        if not adopted:
            ctx.wait(data.get("action"), *data.get("next_actions", []))
        if want.protect:
            self.set_protection(ctx, ident, True)
        return ident

    def apply_step(self, ctx: Ctx, change: Change, step: Step) -> None:
        assert change.observed is not None
        ident = change.observed.id
        base = f"{self.path}/{ident}/actions"
        if step.what == "resize":
            if change.observed.settings["status"] != "off":
                ctx.wait(ctx.conn.request("POST", f"{base}/shutdown", f"shut down {change.name}")["action"])
                self._wait_off(ctx, ident, change.name)
            ctx.wait(ctx.conn.request("POST", f"{base}/change_type", f"resize {change.name}",
                                      json={"server_type": step.detail["server_type"],
                                            "upgrade_disk": False})["action"])
            ctx.wait(ctx.conn.request("POST", f"{base}/poweron", f"power on {change.name}")["action"])
        elif step.what == "power_on":
            ctx.wait(ctx.conn.request("POST", f"{base}/poweron", f"power on {change.name}")["action"])
        elif step.what == "attach_network":
            network = ctx.index.id("network", step.detail["network"])
            ctx.wait(ctx.conn.request("POST", f"{base}/attach_to_network", f"attach {change.name}",
                                      json={"network": network})["action"])
        else:
            raise NotImplementedError(step.what)

    def _wait_off(self, ctx: Ctx, ident: int, name: str) -> None:
        """A graceful shutdown's action ends before the OS is down; power off if it lingers."""
        import time

        for _ in range(60):
            status = ctx.conn.request("GET", f"{self.path}/{ident}", f"status of {name}")["server"]["status"]
            if status == "off":
                return
            time.sleep(1.0)
        ctx.wait(ctx.conn.request("POST", f"{self.path}/{ident}/actions/poweroff", f"power off {name}")["action"])

    def delete(self, ctx: Ctx, have: Observed, force: bool) -> None:
        self.lift_protection(ctx, have, force)
        data = ctx.conn.request("DELETE", f"{self.path}/{have.id}", f"delete server {have.name}")
        ctx.wait(data.get("action"))
