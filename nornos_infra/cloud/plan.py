"""The plan: desired vs observed, matched by kind and name, each difference with its reason.

Apply executes exactly this plan; ``problems`` are differences no change can fix safely
(shrinking a volume, say): the plan is shown, nothing is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nornos_infra.cloud.model import KINDS, Change, Desired, Observed, Op
from nornos_infra.cloud.resources import HANDLERS, Index, Verdict
from nornos_infra.cloud.resources.volumes import Volumes

if TYPE_CHECKING:  # the plan holds a cost; nornos_infra/cost.py reads cloud.model, not the plan
    from nornos_infra.cost import Cost


@dataclass
class Plan:
    env: str
    changes: list[Change]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cost: Cost | None = None  # nornos_infra/cost.py: the plan's monthly cost, before and after

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.op is not Op.NOOP]

    @property
    def destructive(self) -> list[Change]:
        return [c for c in self.changes if c.op.destructive]

    def counts(self) -> dict[str, int]:
        out = {op.value: 0 for op in Op}
        for change in self.changes:
            out[change.op.value] += 1
        return out


def _order(change: Change) -> tuple[int, str]:
    return (KINDS.index(change.kind), change.name)


def make_plan(env: str, desired: list[Desired], observed: list[Observed],
              foreign_keys: list[Observed] | None = None, replace_volumes: bool = False,
              cost: Cost | None = None) -> Plan:
    """``foreign_keys``: SSH keys not managed here; a desired key already uploaded under another
    name is used as it is (Hetzner refuses a second copy of the same key). ``replace_volumes``:
    a volume whose server moves to another location is replaced (a new empty one) instead of
    refusing the plan (resources/volumes.py)."""
    index = Index.of(observed)
    by_key = {k.settings["public_key"]: k for k in foreign_keys or []}
    have = {o.key: o for o in observed}
    want = {d.key: d for d in desired}
    changes: list[Change] = []
    problems: list[str] = []
    notes: list[str] = []
    for key, d in want.items():
        o = have.get(key)
        if o is None and d.kind == "ssh_key" and d.settings["public_key"] in by_key:
            foreign = by_key[d.settings["public_key"]]
            changes.append(Change(Op.NOOP, d.kind, d.name, [f"uses the existing key {foreign.name}"], desired=d,
                                  observed=foreign))
            continue
        if o is None:
            changes.append(Change(Op.CREATE, d.kind, d.name, [HANDLERS[d.kind].summary(d)], desired=d))
            continue
        verdict = _relocation(d, o, want, replace_volumes) or HANDLERS[d.kind].diff(d, o, index)
        problems += verdict.problems
        notes += verdict.notes
        if verdict.op is Op.NOOP:
            changes.append(Change(Op.NOOP, d.kind, d.name, [], desired=d, observed=o))
        else:
            changes.append(Change(verdict.op, d.kind, d.name, verdict.reasons, desired=d, observed=o,
                                  steps=verdict.steps))
    for key, o in have.items():
        if key not in want:
            reason = "no longer in the environment file"
            if o.protected:
                reason += " (protected: needs --force)"
            changes.append(Change(Op.DELETE, o.kind, o.name, [reason], observed=o))
    changes.sort(key=_order)
    return Plan(env, changes, problems, notes, cost)


def _relocation(d: Desired, o: Observed, want: dict[tuple[str, str], Desired], replace: bool) -> Verdict | None:
    """A volume follows its server's location or is refused (volumes cannot move)."""
    if d.kind != "volume":
        return None
    server = want.get(("server", d.settings["server"]))
    volumes = HANDLERS["volume"]
    assert isinstance(volumes, Volumes)
    return None if server is None else volumes.relocation(d, o, server, replace)
