"""Drain a node as ``kubectl drain --ignore-daemonsets --delete-emptydir-data`` does.

Every pod on the node is evicted through the Eviction API, so the API server holds each one to its
PodDisruptionBudget: a 429 is retried every few seconds (kubectl waits 5 s) until the budget allows
it or the drain's deadline passes. DaemonSet pods stay (they run on every node, and come back),
mirror pods of static manifests stay (the kubelet owns them), finished pods go. A pod that no
controller owns would be gone for good, so the drain refuses it, as kubectl does without --force.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nornos_infra.upgrade.nodes import EvictionRefused, NodeApi

MIRROR = "kubernetes.io/config.mirror"


class DrainFailed(Exception):
    """The node could not be emptied; the message names the pods and why."""


@dataclass(frozen=True)
class DrainTiming:
    timeout: float = 600.0  # the whole drain, as kubectl's --timeout
    retry_every: float = 5.0  # after a 429 (kubectl's fixed delay)
    poll_every: float = 1.0  # while an evicted pod terminates


def _name(pod: dict[str, Any]) -> str:
    return f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"


def _controller(pod: dict[str, Any]) -> dict[str, Any] | None:
    return next((o for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)


def sort_pods(pods: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(pods to evict, pods left in place with why, pods that block the drain with why)."""
    evict, kept, refused = [], [], []
    for pod in pods:
        owner = _controller(pod)
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if MIRROR in (pod["metadata"].get("annotations") or {}):
            kept.append(f"{_name(pod)} (a static pod: the kubelet owns it)")
        elif owner and owner.get("kind") == "DaemonSet" and not finished:
            kept.append(f"{_name(pod)} (DaemonSet {owner.get('name')})")
        elif owner is None and not finished:
            refused.append(f"{_name(pod)} (no controller: evicted, it would not come back)")
        else:
            evict.append(pod)
    return evict, kept, refused


def drain(api: NodeApi, node: str, say: Callable[[str], None], timing: DrainTiming = DrainTiming(),
          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    evict, kept, refused = sort_pods(api.pods_on(node))
    if refused:
        raise DrainFailed(f"pods that no controller owns: {', '.join(refused)}; move or delete them, then resume")
    for line in kept:
        say(f"left in place: {line}")
    deadline = clock() + timing.timeout
    pending = {_name(p): p for p in evict}
    evicted: dict[str, tuple[str, str, str]] = {}  # name -> (namespace, pod name, uid)
    blocked: dict[str, str] = {}
    while pending:
        for name, pod in list(pending.items()):
            meta = pod["metadata"]
            try:
                accepted = api.evict(meta["namespace"], meta["name"])
            except EvictionRefused as exc:
                if exc.status != 429:  # 500 (two budgets), 403: nothing waiting fixes
                    raise DrainFailed(f"eviction of {name} refused ({exc.status}): {exc.cause}") from None
                if name not in blocked:
                    say(f"waiting: {name}: {exc.cause} (retrying every {timing.retry_every:g} s)")
                blocked[name] = exc.cause
                continue
            del pending[name]
            blocked.pop(name, None)
            if accepted:
                say(f"evicted {name}")
                evicted[name] = (meta["namespace"], meta["name"], str(meta.get("uid", "")))
        if pending:
            if clock() >= deadline:
                raise DrainFailed(f"not evicted within {timing.timeout:g} s: "
                                  + "; ".join(f"{n}: {blocked.get(n, 'no answer')}" for n in pending))
            sleep(timing.retry_every)
    for name, (namespace, pod_name, uid) in evicted.items():
        while True:  # gone, or another pod of that name (a StatefulSet's) in its place
            current = api.pod_uid(namespace, pod_name)
            if current is None or current != uid:
                break
            if clock() >= deadline:
                raise DrainFailed(f"{name} was evicted but still terminating after {timing.timeout:g} s")
            sleep(timing.poll_every)
