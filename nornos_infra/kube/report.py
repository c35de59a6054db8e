"""What an apply or a dry run did, in a form both people (lines) and automation (dict) read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nornos_infra.kube.model import ObjRef
from nornos_infra.kube.rollout import RolloutResult


@dataclass
class Report:
    env: str
    dry_run: bool
    actions: list[tuple[ObjRef, str]] = field(default_factory=list)  # created, configured, unchanged, pending
    pruned: list[ObjRef] = field(default_factory=list)
    rollouts: list[RolloutResult] = field(default_factory=list)
    diff: str = ""
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.ok for r in self.rollouts)

    def count(self, action: str) -> int:
        return sum(1 for _, a in self.actions if a == action)

    @property
    def changed(self) -> bool:
        return bool(self.pruned) or any(a in ("created", "configured") for _, a in self.actions)

    def lines(self) -> list[str]:
        verb = "would be " if self.dry_run else ""
        out = [f"{ref}: {verb}{action}" for ref, action in self.actions if action != "unchanged"]
        out += [f"{ref}: {verb}pruned (no longer rendered)" for ref in self.pruned]
        for r in self.rollouts:
            out.append(f"rollout {r.ref}: {r.state} after {r.seconds:.0f} s: {r.message}")
        out += [f"note: {n}" for n in self.notes]
        out += [f"error: {e}" for e in self.errors]
        summary = (f"{self.env}: {self.count('created')} {verb}created, {self.count('configured')} {verb}configured, "
                   f"{self.count('unchanged')} unchanged, {len(self.pruned)} {verb}pruned")
        if self.rollouts:
            ready = sum(1 for r in self.rollouts if r.ok)
            summary += f"; rollouts {ready}/{len(self.rollouts)} ready"
        out.append(summary + ("" if self.ok else "; FAILED"))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "env": self.env, "dry_run": self.dry_run, "ok": self.ok, "changed": self.changed,
            "actions": [{"object": str(r), "action": a} for r, a in self.actions],
            "pruned": [str(r) for r in self.pruned],
            "rollouts": [{"object": str(r.ref), "state": r.state, "message": r.message, "seconds": round(r.seconds, 1)}
                         for r in self.rollouts],
            "errors": self.errors, "notes": self.notes,
        }
