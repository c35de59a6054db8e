"""Server-side apply of a rendered set, in dependency order; prune what is no longer rendered;
wait for the Deployments to roll out. With dry_run, the same requests go out with dryRun=All
and the result is a diff: nothing changes in the cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nornos_infra.kube import diff as diffs
from nornos_infra.kube.cluster import Cluster, UnknownKind
from nornos_infra.kube.model import Obj, ObjRef, selector, stamp
from nornos_infra.kube.order import CRDS, CUSTOM, ordered, phase
from nornos_infra.kube.report import Report
from nornos_infra.kube.rollout import RolloutResult, deployment_status

# Kinds that prune looks at: everything we render, minus Namespaces and CRDs (deleting one deletes
# everything in it: that takes a person, not a missing file). A kind dropped from the manifests
# altogether is still pruned because it stays in this list.
PRUNE_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"), ("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"), ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"), ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"), ("networking.k8s.io/v1", "Ingress"),
    ("storage.k8s.io/v1", "StorageClass"), ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("helm.cattle.io/v1", "HelmChart"),
    ("helm.cattle.io/v1", "HelmChartConfig"), ("cert-manager.io/v1", "ClusterIssuer"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
)


@dataclass
class Timing:
    rollout_timeout: float = 600.0  # seconds for all Deployments together
    crd_timeout: float = 300.0      # seconds for a CRD (maybe installed by a chart) to be Established
    poll: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def _api_error(exc: Exception) -> str:
    body = getattr(exc, "body", None) or ""
    status = getattr(exc, "status", None)
    try:
        import json
        message = json.loads(body).get("message", "") if body else ""
    except (ValueError, AttributeError):
        message = str(body)[:300]
    return f"{status} {message or getattr(exc, 'reason', '') or exc}".strip()


def _established(crd: Obj | None) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in ((crd or {}).get("status") or {}).get("conditions") or [])


def wait_for_kind(cluster: Cluster, obj: Obj, timing: Timing) -> str | None:
    """Wait until obj's kind is served and its CRD Established; None when ready, else why not."""
    deadline = timing.clock() + timing.crd_timeout
    api_version, kind = obj["apiVersion"], obj["kind"]
    while True:
        try:
            res = cluster.resource(api_version, kind)
            crd = cluster.get({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                               "metadata": {"name": f"{res.name}.{res.group}"}}) if res.group else None
            if crd is None or _established(crd):
                return None
            why = f"CRD {res.name}.{res.group} is not Established yet"
        except UnknownKind:
            why = f"the API server does not serve {kind} ({api_version}) yet"
        if timing.clock() >= deadline:
            return f"{why} after {timing.crd_timeout:g} s"
        timing.sleep(timing.poll)


def _wait_crds(cluster: Cluster, crds: list[Obj], timing: Timing, report: Report) -> bool:
    deadline = timing.clock() + timing.crd_timeout
    pending = list(crds)
    while pending:
        pending = [c for c in pending if not _established(cluster.get(c))]
        if not pending:
            return True
        if timing.clock() >= deadline:
            names = ", ".join(c["metadata"]["name"] for c in pending)
            report.errors.append(f"CRD(s) {names} not Established after {timing.crd_timeout:g} s; "
                                 "their objects were not applied")
            return False
        timing.sleep(timing.poll)
    return True


def apply_objects(cluster: Cluster, objs: list[Obj], env: str, dry_run: bool = False,
                  timing: Timing | None = None, prune: bool = True, wait: bool = True) -> Report:
    timing = timing or Timing()
    report = Report(env=env, dry_run=dry_run)
    objs = ordered(stamp([dict(o) for o in objs], env))
    rendered = {ObjRef.of(o) for o in objs}
    chunks: list[str] = []
    applied_crds: list[Obj] = []
    deployments: list[Obj] = []
    for obj in objs:
        ref = ObjRef.of(obj)
        if phase(obj) > CRDS and applied_crds and not dry_run:
            if not _wait_crds(cluster, applied_crds, timing, report):
                break
            applied_crds = []
        if phase(obj) == CUSTOM:
            if dry_run:
                if _kind_pending(cluster, obj, report, chunks):
                    continue
            elif _kind_missing(cluster, obj, timing, report):
                break
        applied = _apply_one(cluster, obj, dry_run, report)
        if applied is None:
            break
        live, merged = applied
        action = _action(live, merged, dry_run)
        report.actions.append((ref, action))
        if dry_run and action != "unchanged":
            chunks.append(diffs.unified(ref, live, merged))
        if obj["kind"] == "CustomResourceDefinition":
            applied_crds.append(obj)
        if obj["kind"] == "Deployment":
            deployments.append(obj)
    if applied_crds and not dry_run and not report.errors:
        _wait_crds(cluster, applied_crds, timing, report)
    if report.errors:
        report.notes.append("prune and rollout wait skipped: the apply did not complete")
    else:
        if prune:
            chunks += _prune(cluster, env, rendered, dry_run, report)
        if wait and not dry_run:
            report.rollouts = wait_rollouts(cluster, deployments, timing)
    report.diff = "".join(chunks)
    return report


def _kind_pending(cluster: Cluster, obj: Obj, report: Report, chunks: list[str]) -> bool:
    """Dry run: True when obj's kind is not served yet (noted as pending, its diff shown whole)."""
    ref = ObjRef.of(obj)
    try:
        cluster.resource(obj["apiVersion"], obj["kind"])
    except UnknownKind:
        report.actions.append((ref, "pending"))
        report.notes.append(f"{ref}: its kind is not served yet (CRD from a chart still to install); "
                            "it will be created once the CRD is Established")
        chunks.append(diffs.unified(ref, None, obj))
        return True
    return False


def _kind_missing(cluster: Cluster, obj: Obj, timing: Timing, report: Report) -> bool:
    """True when obj's kind did not become ready in time (the error reported)."""
    why = wait_for_kind(cluster, obj, timing)
    if why:
        report.errors.append(f"{ObjRef.of(obj)}: not applied: {why}")
        return True
    return False


def _apply_one(cluster: Cluster, obj: Obj, dry_run: bool, report: Report) -> tuple[Obj | None, Obj] | None:
    """(live before, merged after) of a server-side apply; None when it failed (the error reported)."""
    ref = ObjRef.of(obj)
    try:
        live = cluster.get(obj)
        try:
            merged = cluster.apply(obj, dry_run=dry_run)
        except Exception as exc:
            if dry_run and live is None and getattr(exc, "status", None) == 404:
                # its namespace does not exist yet: the real apply creates it first
                merged = obj
            else:
                raise
    except UnknownKind as exc:
        report.errors.append(f"{ref}: the API server does not serve {exc}")
        return None
    except Exception as exc:
        if getattr(exc, "status", None) is None:
            raise
        report.errors.append(f"{ref}: apply failed: {_api_error(exc)}")
        return None
    return live, merged


def _action(live: Obj | None, merged: Obj, dry_run: bool) -> str:
    """created, configured or unchanged: what the apply did (or would do) to the object."""
    if live is None:
        return "created"
    if dry_run:
        return "unchanged" if diffs.clean(live) == diffs.clean(merged) else "configured"
    same = (live.get("metadata") or {}).get("resourceVersion") == (merged.get("metadata") or {}).get(
        "resourceVersion")
    return "unchanged" if same else "configured"


def _prune(cluster: Cluster, env: str, rendered: set[ObjRef], dry_run: bool, report: Report) -> list[str]:
    chunks = []
    for api_version, kind in PRUNE_KINDS:
        try:
            live_objs = cluster.list(api_version, kind, selector(env))
        except UnknownKind:
            continue  # the kind is not served: nothing of it can be ours
        for live in sorted(live_objs, key=lambda o: ObjRef.of(o)):
            ref = ObjRef.of(live)
            if ref in rendered:
                continue
            if dry_run:
                chunks.append(diffs.unified(ref, live, None))
            else:
                try:
                    cluster.delete(live)
                except Exception as exc:
                    if getattr(exc, "status", None) is None:
                        raise
                    report.errors.append(f"{ref}: prune failed: {_api_error(exc)}")
                    continue
            report.pruned.append(ref)
    return chunks


def wait_rollouts(cluster: Cluster, deployments: list[Obj], timing: Timing) -> list[RolloutResult]:
    """Poll every Deployment until it is rolled out, failed, or the shared timeout passes."""
    start = timing.clock()
    deadline = start + timing.rollout_timeout
    pending = {ObjRef.of(d): d for d in deployments}
    last: dict[ObjRef, str] = {}
    results: list[RolloutResult] = []
    while pending:
        for ref, dep in list(pending.items()):
            live: Any = cluster.get(dep)
            if live is None:
                status_message, done, failed = "deployment not found", False, False
            else:
                status = deployment_status(live)
                status_message, done, failed = status.message, status.done, status.failed
            last[ref] = status_message
            if done or failed:
                results.append(RolloutResult(ref, "ready" if done else "failed", status_message,
                                             timing.clock() - start))
                del pending[ref]
        if not pending:
            break
        if timing.clock() >= deadline:
            for ref in pending:
                results.append(RolloutResult(
                    ref, "timeout", f"not rolled out within {timing.rollout_timeout:g} s: {last[ref]}",
                    timing.clock() - start))
            break
        timing.sleep(timing.poll)
    return sorted(results, key=lambda r: r.ref)
