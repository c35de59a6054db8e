"""Cloud firewalls per role, applied ONLY by label selector: a firewall applied both per
server and by selector blocks later server changes on Hetzner, so direct entries found on
our firewalls are removed."""

from __future__ import annotations

from typing import Any

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
        if extra or have.settings["servers"]:
            what = [f"selector {s}" for s in extra] + [f"server {i}" for i in have.settings["servers"]]
            verdict.step("remove_entries", f"remove {', '.join(what)} (applied only by our selectors)",
                         selectors=extra, servers=have.settings["servers"])

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
            entries = [_selector(s) for s in step.detail["selectors"]]
            entries += [{"type": "server", "server": {"id": i}} for i in step.detail["servers"]]
            data = ctx.conn.request("POST", f"{base}/remove_from_resources", f"detach {change.name}",
                                    json={"remove_from": entries})
        else:
            raise NotImplementedError(step.what)
        ctx.wait(*data.get("actions", []))

    def delete(self, ctx: Ctx, have: Observed, force: bool) -> None:
        entries = [_selector(s) for s in have.settings["selectors"]]
        entries += [{"type": "server", "server": {"id": i}} for i in have.settings["servers"]]
        if entries:  # a firewall is in use while applied, even by a selector matching nothing
            data = ctx.conn.request("POST", f"{self.path}/{have.id}/actions/remove_from_resources",
                                    f"detach firewall {have.name}", json={"remove_from": entries})
            ctx.wait(*data.get("actions", []))
        ctx.conn.request("DELETE", f"{self.path}/{have.id}", f"delete firewall {have.name}")


def _selector(selector: str) -> dict[str, Any]:
    return {"type": "label_selector", "label_selector": {"selector": selector}}
