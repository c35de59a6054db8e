"""Nodes, pods and evictions for the fake Kubernetes API (tests/unit/fake_kube.py), as a real API
server answers them for ``invoke upgrade``:

- nodes: GET, LIST, and PATCH of the node or its ``status`` subresource with a strategic merge or
  merge patch (``null`` deletes a field; ``status.conditions`` merge by ``type``, their patch
  strategy): cordon, uncordon, and a kubelet reporting its version and Ready;
- pods: GET, LIST with ``fieldSelector=spec.nodeName=...``;
- ``POST .../pods/NAME/eviction`` (policy/v1): the pod's PodDisruptionBudget decides, as the
  API server's eviction REST does (pkg/registry/core/pod/storage/eviction.go): 429 with the
  ``DisruptionBudget`` cause when one fewer healthy pod would break it, 500 when two budgets match,
  404 when the pod is gone; pods that are not Running skip the budget. An evicted pod is deleted;
  one a controller owns comes back (a new uid) on another schedulable node, as its ReplicaSet would
  make it, or stays Pending when there is none.

Not modelled: grace periods (an evicted pod is gone at once, unless ``terminating_gets`` keeps it
terminating for that many GETs: State.terminating_gets), percentages in budgets, ``unhealthyPodEvictionPolicy``,
DisruptionsAllowed from a controller (the budget is computed on each request).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

Answer = tuple[int, dict[str, Any]]
_UIDS = itertools.count(1)


def _status(code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                            "message": message, "reason": reason, "code": code}
    if causes:
        body["details"] = {"causes": causes}
    return body


def strategic_merge(live: Any, patch: Any) -> Any:
    """The parts of a strategic merge patch the kubelet and kubectl send to nodes."""
    if not isinstance(live, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(live)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif key == "conditions" and isinstance(value, list):
            by_type = {c.get("type"): c for c in merged.get(key) or []}
            for condition in value:
                by_type[condition.get("type")] = {**by_type.get(condition.get("type"), {}), **condition}
            merged[key] = list(by_type.values())
        else:
            merged[key] = strategic_merge(merged.get(key), value)
    return merged


def patch_node(objects: dict[tuple[str, str, str, str], dict[str, Any]], name: str, body: Any,
               subresource: str) -> Answer:
    key = ("", "nodes", "", name)
    node = objects.get(key)
    if node is None:
        return 404, _status(404, "NotFound", f'nodes "{name}" not found')
    if not isinstance(body, dict):
        return 400, _status(400, "BadRequest", "the patch is not a JSON object")
    # the main resource ignores status and the status subresource ignores everything else, as on a real server
    part = {"status": body["status"]} if subresource == "status" and "status" in body else (
        {k: v for k, v in body.items() if k != "status"} if subresource == "" else {})
    node = strategic_merge(node, part)
    node["metadata"]["resourceVersion"] = str(int(node["metadata"].get("resourceVersion", "1")) + 1)
    objects[key] = node
    return 200, copy.deepcopy(node)


def _healthy(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {"status": "True"})
    return status.get("phase") == "Running" and ready.get("status") == "True" and "deletionTimestamp" not in pod[
        "metadata"]


def _selected(pod: dict[str, Any], pdb: dict[str, Any]) -> bool:
    wanted = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = pod["metadata"].get("labels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def evict(objects: dict[tuple[str, str, str, str], dict[str, Any]], namespace: str, name: str,
          reschedule: bool = True) -> Answer:
    key = ("", "pods", namespace, name)
    pod = objects.get(key)
    if pod is None:
        return 404, _status(404, "NotFound", f'pods "{name}" not found')
    pods = [o for (g, p, ns, _), o in objects.items() if (g, p, ns) == ("", "pods", namespace)]
    budgets = [o for (g, p, ns, _), o in sorted(objects.items())
               if (g, p, ns) == ("policy", "poddisruptionbudgets", namespace) and _selected(pod, o)]
    if len(budgets) > 1:
        return 500, _status(500, "InternalError", "This pod has more than one PodDisruptionBudget, which the "
                            "eviction subresource does not support.")
    if budgets and (pod.get("status") or {}).get("phase") == "Running":
        budget = budgets[0]
        members = [p for p in pods if _selected(p, budget)]
        healthy = sum(1 for p in members if _healthy(p))
        spec = budget.get("spec") or {}
        if "minAvailable" in spec:
            desired = int(spec["minAvailable"])
        else:
            desired = len(members) - int(spec.get("maxUnavailable", 0))
        if healthy - 1 < desired:
            return 429, _status(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption "
                                "budget.", [{"reason": "DisruptionBudget", "message": f"The disruption budget "
                                             f"{budget['metadata']['name']} needs {desired} healthy pods and has "
                                             f"{healthy} currently"}])
    del objects[key]
    owner = next((o for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)
    if reschedule and owner is not None and owner.get("kind") != "DaemonSet":
        _replace(objects, pod)
    return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


def _replace(objects: dict[tuple[str, str, str, str], dict[str, Any]], pod: dict[str, Any]) -> None:
    """The controller's new pod: on the first schedulable node other than the old one, else Pending."""
    old_node = pod["spec"].get("nodeName")
    nodes = sorted(name for (g, p, _, name), node in objects.items() if (g, p) == ("", "nodes")
                   and name != old_node and not (node.get("spec") or {}).get("unschedulable"))
    new = copy.deepcopy(pod)
    serial = next(_UIDS)
    owner_kind = next(o.get("kind") for o in pod["metadata"]["ownerReferences"] if o.get("controller"))
    if owner_kind != "StatefulSet":  # a ReplicaSet's pod gets a new name, a StatefulSet's keeps it
        new["metadata"]["name"] = f"{pod['metadata']['name'].rsplit('-', 1)[0]}-r{serial}"
    new["metadata"]["uid"] = f"uid-replacement-{serial}"
    if nodes:
        new["spec"]["nodeName"] = nodes[0]
        new["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    else:
        new["spec"].pop("nodeName", None)
        new["status"] = {"phase": "Pending"}
    objects[("", "pods", new["metadata"]["namespace"], new["metadata"]["name"])] = new


def on_node(pod: dict[str, Any], field_selector: str | None) -> bool:
    if not field_selector:
        return True
    field, _, value = field_selector.partition("=")
    if field != "spec.nodeName":
        raise ValueError(f"the fake API only selects pods by spec.nodeName, not {field_selector}")
    return bool((pod.get("spec") or {}).get("nodeName") == value)


def node(name: str, version: str, ready: bool = True, server: bool = False, heartbeat: str = "2026-12-01T00:00:00Z",
         unschedulable: bool = False) -> dict[str, Any]:
    """A Node as a k3s kubelet registers it."""
    labels = {"kubernetes.io/hostname": name, **({"node-role.kubernetes.io/control-plane": "true"} if server else {})}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "spec": {"unschedulable": True} if unschedulable else {},
            "status": {"nodeInfo": {"kubeletVersion": version},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                       "lastHeartbeatTime": heartbeat}]}}


def pod(namespace: str, name: str, node_name: str, labels: dict[str, str] | None = None,
        owner: str | None = "ReplicaSet", phase: str = "Running", annotations: dict[str, str] | None = None,
        empty_dir: bool = False) -> dict[str, Any]:
    """A scheduled pod; ``owner`` is its controller's kind (None: a bare pod)."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": name.rsplit("-", 1)[0],
                                    "uid": f"uid-owner-{name}", "controller": True}]
    if annotations:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {"nodeName": node_name, "containers": [{"name": "app", "image": "app:1"}]}
    if empty_dir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}}


def pdb(namespace: str, name: str, match_labels: dict[str, str], min_available: int | None = None,
        max_unavailable: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": match_labels}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}
