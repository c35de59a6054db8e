"""The Kubernetes API calls an upgrade makes, as kubectl makes them (cordon, drain, Ready).

Answers are read as plain JSON (``_preload_content=False``): the generated client's models would
reject nothing useful here and drop fields the API adds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

STRATEGIC = "application/strategic-merge-patch+json"
REQUEST_TIMEOUT = 30  # seconds: an eviction held by an admission webhook must not hang the run


class EvictionRefused(Exception):
    """The API server refused an eviction; ``status`` is its HTTP status, ``cause`` its own words."""

    def __init__(self, status: int, cause: str) -> None:
        super().__init__(cause)
        self.status = status
        self.cause = cause


@dataclass(frozen=True)
class NodeState:
    name: str
    version: str  # status.nodeInfo.kubeletVersion, e.g. v1.35.0+k3s3
    ready: bool
    heartbeat: str  # the Ready condition's lastHeartbeatTime: it moves on once the kubelet reports again
    unschedulable: bool

    @classmethod
    def of(cls, node: dict[str, Any]) -> NodeState:
        status = node.get("status") or {}
        ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        return cls(name=node["metadata"]["name"], version=str((status.get("nodeInfo") or {}).get("kubeletVersion", "")),
                   ready=ready.get("status") == "True", heartbeat=str(ready.get("lastHeartbeatTime", "")),
                   unschedulable=bool((node.get("spec") or {}).get("unschedulable")))


class NodeApi:
    """The node and pod endpoints of one cluster, through the official client."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.core: Any = client.CoreV1Api(api_client)

    @staticmethod
    def _json(response: Any) -> dict[str, Any]:
        return dict(json.loads(response.data or b"{}"))

    def node(self, name: str) -> NodeState:
        return NodeState.of(self._json(self.core.read_node(name, _preload_content=False,
                                                           _request_timeout=REQUEST_TIMEOUT)))

    def nodes(self) -> dict[str, NodeState]:
        listed = self._json(self.core.list_node(_preload_content=False, _request_timeout=REQUEST_TIMEOUT))
        return {state.name: state for state in (NodeState.of(item) for item in listed.get("items") or [])}

    def set_unschedulable(self, name: str, unschedulable: bool) -> None:
        """Cordon (True) or uncordon (False) with the strategic merge patch kubectl sends."""
        self.core.patch_node(name, {"spec": {"unschedulable": True if unschedulable else None}},
                             _content_type=STRATEGIC, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)

    def pods_on(self, node: str) -> list[dict[str, Any]]:
        pods: list[dict[str, Any]] = []
        token = None
        while True:  # 500 at a time, as kubectl drain lists them
            page = self._json(self.core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={node}", limit=500, _continue=token, _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT))
            pods += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return pods

    def pod_uid(self, namespace: str, name: str) -> str | None:
        """The pod's uid, or None once it is gone."""
        from kubernetes.client.exceptions import ApiException

        try:
            pod = self._json(self.core.read_namespaced_pod(name, namespace, _preload_content=False,
                                                           _request_timeout=REQUEST_TIMEOUT))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return str(pod["metadata"].get("uid", ""))

    def evict(self, namespace: str, name: str) -> bool:
        """POST the policy/v1 Eviction; True when accepted, False when the pod is already gone.
        Raises EvictionRefused with the API server's cause (429: a PodDisruptionBudget)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        body = client.V1Eviction(api_version="policy/v1", kind="Eviction",
                                 metadata=client.V1ObjectMeta(name=name, namespace=namespace),
                                 delete_options=client.V1DeleteOptions())
        try:
            self.core.create_namespaced_pod_eviction(name, namespace, body, _preload_content=False,
                                                     _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise EvictionRefused(int(exc.status or 0), _cause(exc)) from None
        return True


def _cause(exc: Any) -> str:
    """The Status message and its causes (a PDB's "needs 2 healthy pods and has 2 currently")."""
    try:
        status = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return str(exc.reason or exc)
    causes = [c.get("message", "") for c in (status.get("details") or {}).get("causes") or [] if c.get("message")]
    return " ".join([str(status.get("message") or exc.reason or ""), *(f"({c})" for c in causes)]).strip()
