"""The PostgreSQL data volume: created attached to its server (so it lands in the server's
location), grown in place, never shrunk and never formatted here: the postgres deploy
formats it only when it is blank.

A volume cannot leave its location, and it holds patient data: when its server must move
(a location change), the plan refuses with one line that says how to migrate (a backup,
restored on the new server) unless ``--replace-volumes`` is given; then the plan shows the
volume as replaced (a new empty one in the new location, the old one and its data deleted),
which like every replacement needs ``--yes`` and, when protected, ``--force``."""

from __future__ import annotations

from typing import Any

from hcloud import APIException

from nornos_infra.cloud.model import Change, Desired, Observed, Step
from nornos_infra.cloud.resources.base import Ctx, Index, Kind, Verdict
from nornos_infra.errors import UserError


class Volumes(Kind):
    kind, path, key = "volume", "/volumes", "volumes"

    def settings(self, raw: dict[str, Any], index: Index) -> dict[str, Any]:
        return {"size": raw["size"], "server": index.name("server", raw.get("server")),
                "server_id": raw.get("server"), "location": (raw.get("location") or {}).get("name"),
                "linux_device": raw.get("linux_device")}

    def summary(self, want: Desired) -> str:
        return f"{want.settings['size']} GB attached to {want.settings['server']}"

    def compare(self, want: Desired, have: Observed, index: Index, verdict: Verdict) -> None:
        w, h = want.settings, have.settings
        if w["size"] > h["size"]:
            verdict.step("resize", f"size {h['size']} GB -> {w['size']} GB (grow)", size=w["size"])
        elif w["size"] < h["size"]:
            verdict.problems.append(f"volume {want.name}: {h['size']} GB cannot shrink to {w['size']} GB (volumes "
                                    "only grow); restore the size in the environment file")
        if w["server"] != h["server"]:
            if h["server_id"] is not None:
                verdict.step("detach", f"detach from {h['server'] or h['server_id']}")
            verdict.step("attach", f"attach to {w['server']}", server=w["server"])

    def relocation(self, want: Desired, have: Observed, server: Desired, replace: bool) -> Verdict | None:
        """The verdict when the volume's server must move out of the volume's location, else None."""
        allowed = [server.settings["location"], *server.settings["fallback_locations"]]
        where = have.settings["location"]
        if where is None or where in allowed:
            return None
        verdict = Verdict()
        if replace:
            verdict.replace(f"location {where} -> {server.settings['location']} (--replace-volumes: a new empty "
                            f"volume; the one in {where} and its data are deleted)")
        else:
            verdict.problems.append(
                f"volume {want.name}: its server moves from {where} to {server.settings['location']}, and a volume "
                f"cannot leave {where}: back up its databases (nornos-pg-restore, docs/RUNBOOK.md \"Moving "
                "PostgreSQL to another location\"), then run again with --replace-volumes (deletes it and its "
                "data) and restore on the new server")
        return verdict

    def create(self, ctx: Ctx, want: Desired) -> int:
        body = {"name": want.name, "size": want.settings["size"], "labels": want.labels,
                "server": ctx.index.id("server", want.settings["server"]), "automount": False}
        data, adopted = self.create_or_adopt(
            ctx, want, lambda: ctx.conn.request("POST", self.path, f"create volume {want.name}", json=body),
            "volume")
        ident = int(data["volume"]["id"])
        ctx.index.add(self.kind, want.name, ident)
        if not adopted:
            ctx.wait(data.get("action"), *data.get("next_actions", []))
        elif data["volume"].get("server") is None:
            ctx.wait(ctx.conn.request("POST", f"{self.path}/{ident}/actions/attach", f"attach {want.name}",
                                      json={"server": body["server"], "automount": False})["action"])
        if want.protect:
            self.set_protection(ctx, ident, True)
        return ident

    def apply_step(self, ctx: Ctx, change: Change, step: Step) -> None:
        assert change.observed is not None
        base = f"{self.path}/{change.observed.id}/actions"
        if step.what == "resize":
            data = ctx.conn.request("POST", f"{base}/resize", f"grow {change.name}", json={"size": step.detail["size"]})
        elif step.what == "detach":
            data = ctx.conn.request("POST", f"{base}/detach", f"detach {change.name}")
        elif step.what == "attach":
            data = ctx.conn.request("POST", f"{base}/attach", f"attach {change.name}",
                                    json={"server": ctx.index.id("server", step.detail["server"]),
                                          "automount": False})
        else:
            raise NotImplementedError(step.what)
        ctx.wait(data.get("action"))

    def delete(self, ctx: Ctx, have: Observed, force: bool) -> None:
        self.lift_protection(ctx, have, force)
        if have.settings["server_id"] is not None:
            try:
                ctx.wait(ctx.conn.request("POST", f"{self.path}/{have.id}/actions/detach",
                                          f"detach {have.name}")["action"])
            except (APIException, UserError) as exc:
                # the API's answer (the server may be gone already): the delete below says what is wrong;
                # anything else is a bug and stops the run
                ctx.log(f"detaching {have.name}: {exc}")
        ctx.conn.request("DELETE", f"{self.path}/{have.id}", f"delete volume {have.name}")
