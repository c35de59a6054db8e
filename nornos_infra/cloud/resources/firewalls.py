"""Cloud firewalls per role, applied ONLY by label selector; direct server entries found on
our firewalls are removed.

One exception, from the API's own rules: a direct entry for a server that one of the
firewall's selectors also reaches cannot be removed (``remove_from_resources`` answers
``firewall_managed_by_label_selector``). Such an entry filters nothing more (it is the same
firewall), so it is left alone with a note instead of failing every run; it becomes
removable, and is removed, once no selector of the firewall reaches that server. Dropping the
selector to free it would leave the server unfiltered for a while: never done here."""

from __future__ import annotations

from typing import Any

from hcloud import APIException

from nornos_infra.cloud.model import Change, Desired, Observed, Step
from nornos_infra.cloud.resources.base import Ctx, Index, Kind, Verdict


def normalize_rule(rule: dict[str, Any]) -> dict[str, Any]:
    return {"direction": rule["direction"], "protocol": rule["protocol"], "port": rule.get("port"),
            "source_ips": sorted(rule.get("source_ips") or []),
            "destination_ips": sorted(rule.get("destination_ips") or []),
            "description": rule.get("description")}


def _rule_key(rule: dict[str, Any]) -> str:
    return repr(sorted(rule.items()))


class Firewalls(Kind):
    kind, path, key = "firewall", "/firewalls", "firewalls"
    protection_keys = ()

    def settings(self, raw: dict[str, Any], index: Index) -> dict[str, Any]:
        applied = raw.get("applied_to") or []
        return {
            "rules": sorted((normalize_rule(r) for r in raw.get("rules", [])), key=_rule_key),
            "selectors": sorted(a["label_selector"]["selector"] for a in applied if a["type"] == "label_selector"),
            "servers": sorted(a["server"]["id"] for a in applied if a["type"] == "server"),
            # the servers each selector reaches now (the API computes it from the servers' labels)
            "reached": {a["label_selector"]["selector"]: sorted(r["server"]["id"] for r in
                                                                a.get("applied_to_resources") or []
                                                                if r.get("type") == "server")
                        for a in applied if a["type"] == "label_selector"},
        }

    def summary(self, want: Desired) -> str:
        ports = ", ".join(f"{r['protocol']}/{r['port']}" for r in want.settings["rules"])
        return f"in: {ports} from admin CIDRs; applied to {', '.join(want.settings['selectors'])}"

    def compare(self, want: Desired, have: Observed, index: Index, verdict: Verdict) -> None:
        rules = sorted((normalize_rule(r) for r in want.settings["rules"]), key=_rule_key)
        if rules != have.settings["rules"]:
            verdict.step("set_rules", "rules differ", rules=want.settings["rules"])
        missing = sorted(set(want.settings["selectors"]) - set(have.settings["selectors"]))
        extra = sorted(set(have.settings["selectors"]) - set(want.settings["selectors"]))
        if missing:
            verdict.step("apply_selectors", f"apply to {', '.join(missing)}", selectors=missing)
        kept = set(want.settings["selectors"]) & set(have.settings["selectors"])
        held = {i for s in kept for i in have.settings["reached"].get(s, [])}
        servers = [i for i in have.settings["servers"] if i not in held]
        for ident in sorted(held & set(have.settings["servers"])):
            verdict.notes.append(
                f"firewall {want.name} is also applied directly to server {index.name('server', ident) or ident}, "
                "which its selector reaches: the API keeps that entry while the selector holds it "
                "(firewall_managed_by_label_selector); it filters nothing more and is removed once the selector "
                "no longer reaches the server")
        if extra or servers:
            what = [f"selector {s}" for s in extra] + [f"server {i}" for i in servers]
            verdict.step("remove_entries", f"remove {', '.join(what)} (applied only by our selectors)",
                         selectors=extra, servers=servers)

    def create(self, ctx: Ctx, want: Desired) -> int:
        body = {"name": want.name, "labels": want.labels, "rules": want.settings["rules"],
                "apply_to": [_selector(s) for s in want.settings["selectors"]]}
        data, adopted = self.create_or_adopt(
            ctx, want, lambda: ctx.conn.request("POST", self.path, f"create firewall {want.name}", json=body),
            "firewall")
        ident = int(data["firewall"]["id"])
        ctx.index.add(self.kind, want.name, ident)
        if not adopted:
            ctx.wait(*data.get("actions", []))
        return ident

    def apply_step(self, ctx: Ctx, change: Change, step: Step) -> None:
        assert change.observed is not None
        base = f"{self.path}/{change.observed.id}/actions"
        if step.what == "set_rules":
            data = ctx.conn.request("POST", f"{base}/set_rules", f"set rules of {change.name}",
                                    json={"rules": step.detail["rules"]})
        elif step.what == "apply_selectors":
            data = ctx.conn.request("POST", f"{base}/apply_to_resources", f"apply {change.name}",
                                    json={"apply_to": [_selector(s) for s in step.detail["selectors"]]})
        elif step.what == "remove_entries":
            self._remove_entries(ctx, change.name, base, step.detail["selectors"], step.detail["servers"])
            return
        else:
            raise NotImplementedError(step.what)
        ctx.wait(*data.get("actions", []))

    def _remove_entries(self, ctx: Ctx, name: str, base: str, selectors: list[str], servers: list[int]) -> None:
        """Selectors first, then each server entry on its own: a selector applied earlier in this
        run may reach a server by now, and the API refuses to drop that server's entry
        (firewall_managed_by_label_selector); it stays, and the next plan notes it. A server
        deleted earlier in the run took its entry with it (firewall_resource_not_found)."""
        if selectors:
            data = ctx.conn.request("POST", f"{base}/remove_from_resources", f"detach {name}",
                                    json={"remove_from": [_selector(s) for s in selectors]})
            ctx.wait(*data.get("actions", []))
        for ident in servers:
            try:
                data = ctx.conn.request("POST", f"{base}/remove_from_resources", f"detach {name} from server {ident}",
                                        json={"remove_from": [{"type": "server", "server": {"id": ident}}]})
            except APIException as exc:
                if exc.code == "firewall_resource_not_found":  # the server is gone (deleted earlier in
                    continue  # this run), and its entry with it
                if exc.code != "firewall_managed_by_label_selector":
                    raise
                ctx.log(f"firewall {name} stays applied directly to server {ident}: its selector reaches it")
                continue
            ctx.wait(*data.get("actions", []))

    def delete(self, ctx: Ctx, have: Observed, force: bool) -> None:
        # a firewall is in use while applied, even by a selector matching nothing; selectors go
        # first, so that no server entry is still held by one
        self._remove_entries(ctx, have.name, f"{self.path}/{have.id}/actions", have.settings["selectors"],
                             have.settings["servers"])
        ctx.conn.request("DELETE", f"{self.path}/{have.id}", f"delete firewall {have.name}")


def _selector(selector: str) -> dict[str, Any]:
    return {"type": "label_selector", "label_selector": {"selector": selector}}
