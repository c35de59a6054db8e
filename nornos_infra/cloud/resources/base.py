"""What every resource kind provides: read the API's JSON, compare, create, update, delete."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hcloud import APIException

from nornos_infra.cloud.connection import Connection
from nornos_infra.cloud.model import Change, Desired, Observed, Op, Step
from nornos_infra.cloud.waiter import ActionWaiter


@dataclass
class Index:
    """Names and ids of what exists, per kind; apply adds what it creates (thread-safe)."""

    ids: dict[str, dict[str, int]] = field(default_factory=dict)
    names: dict[str, dict[int, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def of(cls, observed: list[Observed]) -> Index:
        index = cls()
        for o in observed:
            index.add(o.kind, o.name, o.id)
        return index

    def add(self, kind: str, name: str, ident: int) -> None:
        with self._lock:
            self.ids.setdefault(kind, {})[name] = ident
            self.names.setdefault(kind, {})[ident] = name

    def id(self, kind: str, name: str) -> int:
        with self._lock:
            return self.ids[kind][name]

    def name(self, kind: str, ident: int | None) -> str | None:
        if ident is None:
            return None
        with self._lock:
            return self.names.get(kind, {}).get(ident)


@dataclass
class Verdict:
    op: Op = Op.NOOP
    reasons: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def step(self, what: str, reason: str, op: Op = Op.UPDATE, **detail: Any) -> None:
        self.steps.append(Step(what, detail))
        self.reasons.append(reason)
        if self.op is Op.NOOP or (op is Op.RESIZE and self.op is Op.UPDATE):
            self.op = op

    def replace(self, reason: str) -> None:
        self.op = Op.REPLACE
        self.reasons.append(reason)


@dataclass
class Ctx:
    """What a kind needs while applying: the API, the waiter, the index, and a logger."""

    conn: Connection
    waiter: ActionWaiter
    index: Index
    log: Callable[[str], None]

    def wait(self, *actions: Any) -> None:
        self.waiter.wait([a for a in actions if a is not None])


class Kind:
    kind = ""
    path = ""  # list endpoint, e.g. /servers
    key = ""  # list key, e.g. servers
    protection_keys: tuple[str, ...] = ("delete",)

    # -- reading ----------------------------------------------------------------------------
    def settings(self, raw: dict[str, Any], index: Index) -> dict[str, Any]:
        raise NotImplementedError

    def observe(self, raw: dict[str, Any], index: Index) -> Observed:
        protection = raw.get("protection") or {}
        return Observed(self.kind, int(raw["id"]), raw["name"], dict(raw.get("labels") or {}),
                        self.settings(raw, index), bool(protection.get("delete")), raw)

    def summary(self, want: Desired) -> str:
        """What a create will make, in a few words for the plan."""
        return "new"

    # -- comparing --------------------------------------------------------------------------
    def diff(self, want: Desired, have: Observed, index: Index) -> Verdict:
        verdict = Verdict()
        self.compare(want, have, index, verdict)
        if verdict.op is not Op.REPLACE:
            if any(have.labels.get(k) != v for k, v in want.labels.items()):
                verdict.step("set_labels", "labels differ", labels={**have.labels, **want.labels})
            if self.protection_keys and want.protect != have.protected:
                verdict.step("set_protection", f"protection {'on' if want.protect else 'off'}",
                             protect=want.protect)
        return verdict

    def compare(self, want: Desired, have: Observed, index: Index, verdict: Verdict) -> None:
        raise NotImplementedError

    # -- applying ---------------------------------------------------------------------------
    def create(self, ctx: Ctx, want: Desired) -> int:
        raise NotImplementedError

    def apply_step(self, ctx: Ctx, change: Change, step: Step) -> None:
        raise NotImplementedError(step.what)

    def delete(self, ctx: Ctx, have: Observed, force: bool) -> None:
        raise NotImplementedError

    # -- shared steps -----------------------------------------------------------------------
    def set_labels(self, ctx: Ctx, ident: int, labels: dict[str, str]) -> None:
        ctx.conn.request("PUT", f"{self.path}/{ident}", f"label {self.kind} {ident}", json={"labels": labels})

    def set_protection(self, ctx: Ctx, ident: int, protect: bool) -> None:
        body = {k: protect for k in self.protection_keys}
        data = ctx.conn.request("POST", f"{self.path}/{ident}/actions/change_protection",
                                f"protect {self.kind} {ident}", json=body)
        ctx.wait(data.get("action"))

    def find_by_name(self, ctx: Ctx, name: str) -> dict[str, Any] | None:
        items = ctx.conn.request("GET", self.path, f"find {self.kind} {name}", params={"name": name})[self.key]
        # the exact name, whatever the API made of the filter: adopting another resource would relabel it
        return next((item for item in items if item.get("name") == name), None)

    def create_or_adopt(self, ctx: Ctx, want: Desired, post: Callable[[], dict[str, Any]],
                        item_key: str) -> tuple[dict[str, Any], bool]:
        """POST the create; a uniqueness_error means it exists (an earlier run, a lost reply): adopt it.

        Returns (the resource JSON, whether it was adopted). An adopted resource gets our labels.
        """
        try:
            data = post()
            return data, False
        except APIException as exc:
            if exc.code != "uniqueness_error":
                raise
        found = self.find_by_name(ctx, want.name)
        if found is None:
            raise APIException("uniqueness_error", f"{self.kind} {want.name} is taken by another resource", None)
        ctx.log(f"adopted existing {self.kind} {want.name} (id {found['id']})")
        if any(found.get("labels", {}).get(k) != v for k, v in want.labels.items()):
            self.set_labels(ctx, found["id"], {**found.get("labels", {}), **want.labels})
        return {item_key: found}, True

    def lift_protection(self, ctx: Ctx, have: Observed, force: bool) -> None:
        if have.protected:
            if not force:
                from nornos_infra.errors import UserError

                raise UserError(f"{self.kind} {have.name} is protected; run with --force to lift protection "
                                "and delete it")
            ctx.log(f"lifting protection of {self.kind} {have.name}")
            self.set_protection(ctx, have.id, False)
