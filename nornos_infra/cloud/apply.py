"""Apply exactly the plan that was printed.

Deletes go first, in reverse dependency order (load balancers and volumes, then servers,
then groups, firewalls, network, keys). Then creates, updates and resizes run as a
dependency graph: each starts as soon as what it needs is done (a server needs its
network, placement group and keys; the volume its server; the load balancer the network),
at most ``concurrency`` at once, so the run takes about as long as its critical path.
All actions are awaited through one batched poller. When a change fails, what runs is
finished, nothing new begins, and what depended on it is reported as skipped: a re-run
converges from there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field

from nornos_infra.cloud.connection import Connection
from nornos_infra.cloud.model import Change, Op
from nornos_infra.cloud.plan import Plan
from nornos_infra.cloud.resources import HANDLERS, Ctx, Index
from nornos_infra.cloud.waiter import ActionWaiter, Progress
from nornos_infra.errors import UserError

DELETE_WAVES: tuple[tuple[str, ...], ...] = (
    ("load_balancer", "volume"), ("server",), ("placement_group", "firewall", "network", "ssh_key"))


@dataclass
class Outcome:
    done: list[Change] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)  # not started: something they need failed


def dependencies(change: Change) -> set[tuple[str, str]]:
    """What must exist before this change can run (by kind and name)."""
    if change.desired is None:
        return set()
    s = change.desired.settings
    if change.kind == "server":
        return ({("network", n) for n in s["networks"]} | {("placement_group", s["placement_group"])}
                | {("ssh_key", k) for k in s["ssh_keys"]})
    if change.kind == "volume":
        return {("server", s["server"])}
    if change.kind == "load_balancer":
        return {("network", n) for n in s["networks"]}
    return set()


def _index_desc(change: Change) -> tuple[int, str]:
    """Highest server index first, so a scale-down interrupted half-way keeps the low ones."""
    match = re.search(r"-(\d+)$", change.name)
    return (-(int(match.group(1)) if match else 0), change.name)


class Applier:
    def __init__(self, conn: Connection, plan: Plan, *, force: bool = False, concurrency: int = 16,
                 log: Callable[[str], None] = print, on_done: Callable[[Change], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.plan = plan
        self.force = force
        self.concurrency = concurrency
        self.log = log
        self.on_done = on_done
        index = Index()
        for change in plan.changes:
            if change.observed is not None:
                index.add(change.kind, change.observed.name, change.observed.id)
                index.add(change.kind, change.name, change.observed.id)  # a foreign SSH key under our name
        self.ctx = Ctx(conn, ActionWaiter(conn, interval=conn.poll_interval, on_progress=on_progress), index, log)

    def run(self) -> Outcome:
        outcome = Outcome()
        deletes = [c for c in self.plan.changes if c.op in (Op.DELETE, Op.REPLACE)]
        forward = [c for c in self.plan.changes if c.op in (Op.CREATE, Op.UPDATE, Op.RESIZE, Op.REPLACE)]
        for wave in DELETE_WAVES:
            batch = sorted((c for c in deletes if c.kind in wave), key=_index_desc)
            self._run_wave(batch, self._delete, outcome)
        if not outcome.failed:
            self._run_graph(forward, outcome)
        return outcome

    def _run_graph(self, changes: list[Change], outcome: Outcome) -> None:
        pending = {c.key: c for c in changes}
        needs = {c.key: {d for d in dependencies(c) if d in pending} for c in changes}
        done: set[tuple[str, str]] = set()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="apply") as pool:
            running: dict[Future[None], Change] = {}

            def submit_ready() -> None:
                for key, change in list(pending.items()):
                    if not outcome.failed and needs[key] <= done:
                        del pending[key]
                        running[pool.submit(self._forward, change)] = change

            submit_ready()
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    change = running.pop(future)
                    self._record(change, future.exception(), outcome)
                    if future.exception() is None:
                        done.add(change.key)
                submit_ready()
        for change in pending.values():
            outcome.skipped.append(change)

    def _run_wave(self, batch: list[Change], work: Callable[[Change], None], outcome: Outcome) -> None:
        if not batch or outcome.failed:
            return
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="apply") as pool:
            futures = {pool.submit(work, change): change for change in batch}
            for future in as_completed(futures):
                self._record(futures[future], future.exception(), outcome)

    def _record(self, change: Change, error: BaseException | None, outcome: Outcome) -> None:
        if error is None:
            outcome.done.append(change)
            if self.on_done is not None:
                self.on_done(change)
            return
        message = str(error) if isinstance(error, UserError) else f"{type(error).__name__}: {error}"
        outcome.failed.append((change, message))
        self.log(f"failed: {change.op.value} {change.kind} {change.name}: {message}")

    def _delete(self, change: Change) -> None:
        assert change.observed is not None
        self.log(f"deleting {change.kind} {change.name}")
        HANDLERS[change.kind].delete(self.ctx, change.observed, self.force)

    def _forward(self, change: Change) -> None:
        handler = HANDLERS[change.kind]
        if change.op in (Op.CREATE, Op.REPLACE):
            assert change.desired is not None
            self.log(f"creating {change.kind} {change.name}")
            handler.create(self.ctx, change.desired)
            return
        assert change.observed is not None and change.desired is not None
        for step in change.steps:
            self.log(f"{change.kind} {change.name}: {step.what}")
            if step.what == "set_labels":
                handler.set_labels(self.ctx, change.observed.id, step.detail["labels"])
            elif step.what == "set_protection":
                handler.set_protection(self.ctx, change.observed.id, step.detail["protect"])
            else:
                handler.apply_step(self.ctx, change, step)
