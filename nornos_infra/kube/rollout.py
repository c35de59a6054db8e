"""Deployment rollout status, ported from kubectl's polymorphichelpers/rollout_status.go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nornos_infra.kube.model import Obj, ObjRef


@dataclass(frozen=True)
class RolloutStatus:
    done: bool
    failed: bool
    message: str


@dataclass(frozen=True)
class RolloutResult:
    ref: ObjRef
    state: str  # "ready", "failed", "timeout"
    message: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.state == "ready"


def deployment_status(dep: Obj) -> RolloutStatus:
    meta: dict[str, Any] = dep.get("metadata") or {}
    spec: dict[str, Any] = dep.get("spec") or {}
    status: dict[str, Any] = dep.get("status") or {}
    name = meta.get("name")
    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return RolloutStatus(False, False, f"waiting for deployment {name} spec update to be observed")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return RolloutStatus(False, True,
                                 f"deployment {name} exceeded its progress deadline: {cond.get('message', '')}")
    # why pods are not coming (Pod Security admission, quota): kubectl keeps waiting, and so do we,
    # but the message says it instead of only counting replicas
    why = next((f" (ReplicaFailure: {cond.get('message', '')})" for cond in status.get("conditions") or []
                if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True"), "")
    wanted = spec.get("replicas")
    updated = int(status.get("updatedReplicas") or 0)
    replicas = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if wanted is not None and updated < int(wanted):
        return RolloutStatus(False, False, f"{updated} out of {wanted} new replicas have been updated{why}")
    if replicas > updated:
        return RolloutStatus(False, False, f"{replicas - updated} old replicas are pending termination{why}")
    if available < updated:
        return RolloutStatus(False, False, f"{available} of {updated} updated replicas are available{why}")
    return RolloutStatus(True, False, f"successfully rolled out ({available} available)")
