"""The rolling upgrade: servers one at a time, then agents one at a time, each node
cordoned, drained, given the pinned binary, restarted, seen Ready at the new version, uncordoned.

The first failure stops the run with the node cordoned (as kubectl drain and k3s's own upgrade
controller leave it) and one line that says where, why and how to go on: the same command again.
A resumed run skips the nodes already at the target and schedulable, and uncordons one that is at
the target but still cordoned (a run stopped after its restart).

Version rules (k3s's and Kubernetes' skew policy): no downgrade, no skipped minor version, and no
agent before every server runs the target.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nornos_infra import inventory, k3s_releases
from nornos_infra.errors import UserError
from nornos_infra.host_command import Outcome
from nornos_infra.upgrade import swap as swapping
from nornos_infra.upgrade.drain import DrainFailed, DrainTiming, drain, sort_pods
from nornos_infra.upgrade.nodes import NodeApi, NodeState

STEPS = "cordon, drain, swap the binary, restart, wait for Ready, uncordon"


@dataclass(frozen=True)
class Timing:
    drain: DrainTiming = field(default_factory=DrainTiming)
    ready_timeout: float = 300.0  # the kubelet's first report after a restart
    ready_poll: float = 2.0


@dataclass(frozen=True)
class Step:
    host: inventory.Host
    role: str  # server | agent
    state: NodeState
    action: str  # upgrade | uncordon | skip


class Stopped(Exception):
    """A node's step failed; the run stops there."""


def ordered_hosts(loaded: inventory.Inventory) -> list[tuple[inventory.Host, str]]:
    """Servers first, then agents, each by name (the first server, which the others join, leads)."""
    servers = sorted(loaded.hosts("k3s_servers"), key=lambda h: h.name)
    agents = sorted(loaded.hosts("k3s_agents"), key=lambda h: h.name)
    return [(h, "server") for h in servers] + [(h, "agent") for h in agents]


def check_versions(target: str, states: dict[str, NodeState]) -> None:
    """Refuse a downgrade and a skipped minor version, naming the nodes in the way."""
    wanted = k3s_releases.parse(target)
    running = {name: k3s_releases.parse(s.version) for name, s in states.items() if s.version}
    newer = sorted(name for name, v in running.items() if v > wanted)
    if newer:
        raise UserError(f"{', '.join(newer)} already run{'s' if len(newer) == 1 else ''} a newer k3s than {target} "
                        f"({running[newer[0]]}): k3s cannot be downgraded")
    for name, version in sorted(running.items()):
        if version.major != wanted.major or wanted.minor - version.minor > 1:
            raise UserError(f"{name} runs {version}: {target} would skip a minor version, which Kubernetes does not "
                            f"support; upgrade to a v{version.major}.{version.minor + 1} release first")


def plan(api: NodeApi, loaded: inventory.Inventory, target: str) -> list[Step]:
    states = api.nodes()
    hosts = ordered_hosts(loaded)
    if not hosts:
        raise UserError(f"{loaded.source or 'the inventory'} has no k3s_servers or k3s_agents")
    missing = [h.name for h, _ in hosts if h.name not in states]
    if missing:
        raise UserError(f"not in the cluster: {', '.join(missing)} (the API server has no such node); "
                        "deploy k3s there first (pyinfra ... deploys/all.py)")
    check_versions(target, {h.name: states[h.name] for h, _ in hosts})
    steps = []
    for host, role in hosts:
        state = states[host.name]
        at_target = state.version == target
        action = "upgrade" if not at_target else ("uncordon" if state.unschedulable else "skip")
        steps.append(Step(host, role, state, action))
    return steps


def describe(steps: list[Step], target: str, api: NodeApi | None = None) -> list[str]:
    """The plan as ``--dry-run`` prints it: each node in order, its version now, what would happen."""
    lines = []
    width = max(len(s.host.name) for s in steps)
    for number, step in enumerate(steps, start=1):
        state = step.state
        now = f"{state.version or '?'} {'Ready' if state.ready else 'NotReady'}"
        now += ", cordoned" if state.unschedulable else ""
        what = {"upgrade": STEPS, "uncordon": "uncordon (at the target already: a stopped run's last step)",
                "skip": f"at {target} already: skipped"}[step.action]
        line = f"  {number}. {step.host.name:<{width}}  {step.role:<6}  {now:<28} -> {what}"
        if api is not None and step.action == "upgrade":
            evict, kept, refused = sort_pods(api.pods_on(step.host.name))
            line += f" ({len(evict)} pod(s) to evict, {len(kept)} left in place"
            line += f"; BLOCKED by {', '.join(refused)})" if refused else ")"
        lines.append(line)
    return lines


class Rolling:
    def __init__(self, api: NodeApi, target: str, sha256: str, binary_file: Path | None,
                 say: Callable[[str], None] = print, timing: Timing = Timing(),
                 swap: Callable[[inventory.Host, str, str, Path | None], Outcome] = swapping.swap,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.api, self.target, self.sha256, self.binary_file = api, target, sha256, binary_file
        self.say, self.timing, self.swap, self.clock, self.sleep = say, timing, swap, clock, sleep

    def run(self, steps: list[Step]) -> list[str]:
        """Upgrade each node in order; returns the nodes changed. Raises Stopped at the first failure."""
        done: list[str] = []
        for number, step in enumerate(steps, start=1):
            if step.role == "agent":
                self._servers_at_target(steps)
            name = step.host.name
            where = f"{name} (node {number} of {len(steps)}, {step.role})"
            if step.action == "skip":
                self.say(f"{name}: at {self.target} already, skipped")
                continue
            stage = "uncordon"
            try:
                if step.action == "upgrade":
                    stage = "cordon"
                    self.say(f"{name}: cordon")
                    self.api.set_unschedulable(name, True)
                    stage = "drain"
                    self.say(f"{name}: drain")
                    drain(self.api, name, self._prefixed(name), self.timing.drain, self.clock, self.sleep)
                    stage = "binary"
                    before = self.api.node(name).heartbeat
                    self.say(f"{name}: k3s {self.target} in place of {step.state.version}, restart")
                    outcome = self.swap(step.host, self.target, self.sha256, self.binary_file)
                    if outcome.status != 0:
                        raise Stopped(" ".join(outcome.output.split()) or f"exit {outcome.status}")
                    stage = "ready"
                    self._wait_ready(name, before)
                    stage = "uncordon"
                self.say(f"{name}: uncordon")
                self.api.set_unschedulable(name, False)
            except (Stopped, DrainFailed) as exc:
                raise Stopped(self._stopped(where, stage, str(exc), done)) from None
            except UserError as exc:
                raise Stopped(self._stopped(where, stage, str(exc), done)) from None
            except Exception as exc:  # the API or SSH failing mid-way: where it stopped matters most
                raise Stopped(self._stopped(where, stage, f"{type(exc).__name__}: {exc}", done)) from None
            done.append(name)
            self.say(f"{name}: {self.target}, Ready, schedulable")
        return done

    def _prefixed(self, name: str) -> Callable[[str], None]:
        return lambda line: self.say(f"{name}:   {line}")

    def _servers_at_target(self, steps: list[Step]) -> None:
        servers = [s.host.name for s in steps if s.role == "server"]
        behind = [name for name in servers if self.api.node(name).version != self.target]
        if behind:
            raise Stopped(f"upgrade stopped before the agents: {', '.join(behind)} not at {self.target} yet "
                          "(agents never run ahead of the servers); run the same command again")

    def _wait_ready(self, name: str, heartbeat_before: str) -> None:
        deadline = self.clock() + self.timing.ready_timeout
        while True:
            state = self.api.node(name)
            # a fresh heartbeat: right after a restart the old kubelet's Ready can still be on record
            if state.version == self.target and state.ready and state.heartbeat != heartbeat_before:
                return
            if self.clock() >= deadline:
                raise Stopped(f"not Ready at {self.target} within {self.timing.ready_timeout:g} s (it reports "
                              f"{state.version or 'no version'}, {'Ready' if state.ready else 'NotReady'}); "
                              f"see journalctl -u k3s on the host")
            self.sleep(self.timing.ready_poll)

    def _stopped(self, where: str, stage: str, why: str, done: list[str]) -> str:
        cordoned = "" if stage == "cordon" else " The node is left cordoned."
        finished = f" Done in this run: {', '.join(done)}." if done else ""
        return (f"upgrade stopped at {where}, step {stage}: {why}.{cordoned}{finished} Fix the cause, then run "
                f"the same command again: nodes at {self.target} are skipped and this one is resumed")
