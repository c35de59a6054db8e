"""A small fake Kubernetes API server for the apply tests (no real API server can run here).

It implements just what the kubernetes client's DynamicClient and our apply step use: discovery
(/version, /api, /apis, resource lists), GET, LIST with labelSelector, server-side apply (PATCH
application/apply-patch+yaml with fieldManager, force and dryRun=All), DELETE, CRD status
Established, and Deployment status driven by the test (ready, stuck, failed, or a scripted
sequence: a rollout that lags). Every request is recorded (method, path, query, content type) so
tests assert order and parameters.

It refuses what a real API server refuses for the kinds the project applies (fake_kube_rules.py):
types and, with fieldValidation=Strict, unknown fields (the Kubernetes 1.35 schema); invalid enum
values and cross-field rules; changes to immutable fields; field-manager conflicts without force
(409, per field: server-side apply ownership with lists as atomic values); kinds that are not
served (no CRD). Pod templates that Pod Security admission forbids in their namespace (its
``enforce`` label, else the cluster default of k3s's psa.yaml: restricted, kube-system exempt) are
accepted, as a real API server accepts the Deployment, but never get a pod: the status says
ReplicaFailure with the admission message. What it still does not model: docs/MANIFESTS.md.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.unit import fake_kube_nodes as nodes
from tests.unit import fake_kube_rules as rules

# (group, version, plural, kind, namespaced)
BUILTIN = [
    ("", "v1", "namespaces", "Namespace", False), ("", "v1", "serviceaccounts", "ServiceAccount", True),
    ("", "v1", "secrets", "Secret", True), ("", "v1", "configmaps", "ConfigMap", True),
    ("", "v1", "services", "Service", True), ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
    ("", "v1", "nodes", "Node", False), ("", "v1", "pods", "Pod", True),
    ("apps", "v1", "deployments", "Deployment", True), ("apps", "v1", "statefulsets", "StatefulSet", True),
    ("apps", "v1", "daemonsets", "DaemonSet", True),
    ("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", True),
    ("storage.k8s.io", "v1", "storageclasses", "StorageClass", False),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False),
    # k3s ships the HelmChart and HelmChartConfig CRDs itself
    ("helm.cattle.io", "v1", "helmcharts", "HelmChart", True),
    ("helm.cattle.io", "v1", "helmchartconfigs", "HelmChartConfig", True),
]

# the patch types kubectl and the kubelet send for nodes (server-side apply is handled apart)
MERGE_PATCHES = ("application/strategic-merge-patch+json", "application/merge-patch+json")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any = None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


StatusScript = Callable[[int, int], dict[str, Any]]  # (generation, spec.replicas) -> Deployment status


def lagging(generation_lag: int = 2, updating: int = 2, unavailable: int = 1) -> list[StatusScript]:
    """A rollout that takes its time: the controller has not seen the new spec for ``generation_lag``
    looks, then the new ReplicaSet is short of replicas (old ones still there), then not yet available,
    then done. Every look is one GET of the Deployment."""
    def unobserved(gen: int, replicas: int) -> dict[str, Any]:
        # the previous generation's status: complete, so only observedGeneration tells it is stale
        return {"observedGeneration": gen - 1, "replicas": replicas, "updatedReplicas": replicas,
                "availableReplicas": replicas, "readyReplicas": replicas}

    def short(gen: int, replicas: int) -> dict[str, Any]:
        # the new ReplicaSet is scaling up: fewer updated than wanted, and nothing old left over
        return {"observedGeneration": gen, "replicas": max(replicas - 1, 0),
                "updatedReplicas": max(replicas - 1, 0), "availableReplicas": max(replicas - 1, 0)}

    def not_available(gen: int, replicas: int) -> dict[str, Any]:
        return {"observedGeneration": gen, "replicas": replicas, "updatedReplicas": replicas,
                "availableReplicas": replicas - 1}

    def done(gen: int, replicas: int) -> dict[str, Any]:
        return {"observedGeneration": gen, "replicas": replicas, "updatedReplicas": replicas,
                "availableReplicas": replicas, "readyReplicas": replicas}

    return [unobserved] * generation_lag + [short] * updating + [not_available] * unavailable + [done]


@dataclass
class State:
    resources: list[tuple[str, str, str, str, bool]] = field(default_factory=lambda: list(BUILTIN))
    objects: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)  # group, plural, ns, name
    # field ownership per object: leaf path -> {manager: "Apply" | "Update"}
    owners: dict[tuple[str, str, str, str], dict[tuple[Any, ...], dict[str, str]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    rollout: str = "ready"          # ready | stuck | deadline (every Deployment without a script)
    # Deployment name -> statuses served on successive GETs (the last one repeats), e.g. lagging()
    rollout_script: dict[str, list[StatusScript]] = field(default_factory=dict)
    deployment_gets: dict[str, int] = field(default_factory=dict)
    crd_established_after: int = 0  # GETs of a CRD before it reports Established
    crd_gets: dict[str, int] = field(default_factory=dict)
    reject: set[str] = field(default_factory=set)  # names whose apply fails with 422 Invalid
    forbid_delete: set[str] = field(default_factory=set)  # names whose delete (or eviction) fails with 403 (RBAC)
    version: int = 0
    # Pod Security admission: the level where a namespace has no enforce label (k3s psa.yaml), exemptions
    psa_default: str = "restricted"
    psa_exempt: tuple[str, ...] = ("kube-system",)
    # what helm-controller would install when a HelmChart is applied: chart name -> CRD kinds it brings
    charts: dict[str, list[tuple[str, str, str, str, bool]]] = field(default_factory=lambda: {
        "cert-manager": [("cert-manager.io", "v1", "clusterissuers", "ClusterIssuer", False)],
        "kube-prometheus-stack": [("monitoring.coreos.com", "v1", "prometheusrules", "PrometheusRule", True)]})
    # evictions (fake_kube_nodes.py): an evicted pod a controller owns comes back on another node;
    # with terminating_gets > 0 it stays (terminating) for that many GETs before it is gone
    reschedule: bool = True
    terminating_gets: int = 0
    terminating: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _leaves(value: Any, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    """Server-side apply's field set, simplified: every map key down to scalars; lists (and empty maps)
    are atomic values."""
    if isinstance(value, dict) and value:
        out: dict[tuple[Any, ...], Any] = {}
        for key, inner in value.items():
            out.update(_leaves(inner, (*prefix, key)))
        return out
    return {prefix: value}


def _fields_of(obj: dict[str, Any]) -> dict[tuple[Any, ...], Any]:
    """The fields a manager can own: everything but identity, server-set metadata and status."""
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}
    meta = obj.get("metadata") or {}
    fields = _leaves(body) if body else {}
    for key in ("labels", "annotations"):
        for path, value in _leaves(meta.get(key) or {}).items():
            if path:
                fields[("metadata", key, *path)] = value
    return fields


def _build(fields: dict[tuple[Any, ...], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in sorted(fields.items(), key=lambda item: len(item[0])):
        target = out
        for part in path[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}  # a value replaced by a map: the map wins
            target = target[part]
        target[path[-1]] = copy.deepcopy(value)
    return out


def _dotted(path: tuple[Any, ...]) -> str:
    return "." + ".".join(str(p) for p in path)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason,
            "code": code}


def _matches(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    state: State
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> Request:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        req = Request(self.command, url.path, parse_qs(url.query), self.headers.get("Content-Type", ""), body)
        with self.state.lock:
            self.state.requests.append(req)
        return req

    def do_GET(self) -> None:
        self._handle(self._record())

    def do_PATCH(self) -> None:
        self._handle(self._record())

    def do_DELETE(self) -> None:
        self._handle(self._record())

    def do_POST(self) -> None:
        self._handle(self._record())

    # --- routing --------------------------------------------------------------------------------------

    def _handle(self, req: Request) -> None:
        st = self.state
        parts = [p for p in req.path.split("/") if p]
        with st.lock:
            if req.path == "/version":
                return self._send(200, {"major": "1", "minor": "35", "gitVersion": "v1.35.0+k3s3"})
            if req.path == "/api":
                return self._send(200, {"kind": "APIVersions", "versions": ["v1"]})
            if req.path == "/apis":
                groups: dict[str, str] = {}
                for g, v, *_ in st.resources:
                    if g:
                        groups[g] = v
                return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                    {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                     "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}}
                    for g, v in sorted(groups.items())]})
            if parts[0] == "api":
                group, version, rest = "", parts[1], parts[2:]
            else:
                group, version, rest = parts[1], parts[2] if len(parts) > 2 else "", parts[3:]
            if not rest:
                listed = [r for r in st.resources if r[0] == group and r[1] == version]
                if not listed:
                    return self._send(404, _status(404, "NotFound", "could not find the requested resource"))
                return self._send(200, {"kind": "APIResourceList", "groupVersion": f"{group}/{version}".lstrip("/"),
                                        "resources": [{"name": p, "singularName": k.lower(), "namespaced": ns,
                                                       "kind": k, "verbs": ["get", "list", "patch", "delete"]}
                                                      for _, _, p, k, ns in listed]})
            ns = ""
            if rest[0] == "namespaces" and len(rest) >= 3:
                ns, rest = rest[1], rest[2:]
            plural, name = rest[0], rest[1] if len(rest) > 1 else ""
            subresource = rest[2] if len(rest) > 2 else ""
            spec = next((r for r in st.resources if r[0] == group and r[1] == version and r[2] == plural), None)
            if spec is None:
                return self._send(404, _status(404, "NotFound", f"no resource {plural}"))
            if (group, plural) in (("", "nodes"), ("", "pods")):
                handled = self._node_or_pod(req, plural, ns, name, subresource)
                if handled:
                    return None
            if req.method == "GET" and not name:
                return self._list(group, version, spec, ns, req)
            key = (group, plural, ns, name)
            if req.method == "GET":
                return self._get(key, spec)
            if req.method == "PATCH":
                return self._apply(key, spec, req)
            if req.method == "DELETE":
                if key not in st.objects:
                    return self._send(404, _status(404, "NotFound", f"{plural} {name} not found"))
                if name in st.forbid_delete:
                    return self._send(403, _status(403, "Forbidden", f'{plural} "{name}" is forbidden: '
                                                   "User cannot delete resource"))
                if req.param("dryRun") != "All":
                    del st.objects[key]
                return self._send(200, {"kind": "Status", "status": "Success"})
        return self._send(405, _status(405, "MethodNotAllowed", req.method))

    def _node_or_pod(self, req: Request, plural: str, ns: str, name: str, subresource: str) -> bool:
        """Nodes and pods as the upgrade uses them (fake_kube_nodes.py); False: the generic handling."""
        st = self.state
        key = ("", plural, ns, name)
        if req.method == "POST" and plural == "pods" and subresource == "eviction":
            if key in st.terminating:  # already evicted, still terminating: a real server accepts it again
                self._send(201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
                return True
            if name in st.forbid_delete:
                self._send(403, _status(403, "Forbidden", f'pods "{name}" is forbidden: User cannot create '
                                        'resource "pods/eviction"'))
                return True
            live = copy.deepcopy(st.objects.get(key))
            code, body = nodes.evict(st.objects, ns, name, st.reschedule)
            if code == 201 and st.terminating_gets and live is not None:
                live["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
                st.objects[key] = live  # its replacement is already there; this one takes a while to go
                st.terminating[key] = st.terminating_gets
            self._send(code, body)
            return True
        if req.method == "PATCH" and plural == "nodes" and req.content_type in MERGE_PATCHES:
            self._send(*nodes.patch_node(st.objects, name, req.body, subresource))
            return True
        if req.method == "GET" and plural == "pods" and name and key in st.terminating:
            st.terminating[key] -= 1
            if st.terminating[key] <= 0:
                del st.terminating[key]
                del st.objects[key]
        return False

    def _list(self, group: str, version: str, spec: tuple[str, str, str, str, bool], ns: str, req: Request) -> None:
        items = [copy.deepcopy(o) for (g, p, n, _), o in sorted(self.state.objects.items())
                 if g == group and p == spec[2] and (not ns or n == ns)
                 and _matches(o["metadata"].get("labels") or {}, req.param("labelSelector"))
                 and nodes.on_node(o, req.param("fieldSelector"))]
        for item in items:
            item.pop("apiVersion", None)
            item.pop("kind", None)
        self._send(200, {"kind": f"{spec[3]}List", "apiVersion": f"{group}/{version}".lstrip("/"),
                         "metadata": {"resourceVersion": str(self.state.version)}, "items": items})

    def _get(self, key: tuple[str, str, str, str], spec: tuple[str, str, str, str, bool]) -> None:
        obj = self.state.objects.get(key)
        if obj is None:
            return self._send(404, _status(404, "NotFound", f"{spec[2]} \"{key[3]}\" not found"))
        obj = copy.deepcopy(obj)
        if spec[3] == "CustomResourceDefinition":
            seen = self.state.crd_gets[key[3]] = self.state.crd_gets.get(key[3], 0) + 1
            # while a CRD is installing, the API server has accepted its names but not Established it yet
            established = "True" if seen > self.state.crd_established_after else "False"
            obj["status"] = {"conditions": [{"type": "NamesAccepted", "status": "True"},
                                            {"type": "Established", "status": established}]}
        if spec[3] == "Deployment":
            obj["status"] = self._deployment_status(obj)
        self._send(200, obj)

    def _deployment_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        gen = obj["metadata"]["generation"]
        replicas = obj["spec"].get("replicas", 1)
        name = obj["metadata"]["name"]
        seen = self.state.deployment_gets[name] = self.state.deployment_gets.get(name, 0) + 1
        forbidden = self._pod_security(obj)
        if forbidden:  # the ReplicaSet cannot create a single pod
            return {"observedGeneration": gen, "replicas": 0, "updatedReplicas": 0, "availableReplicas": 0,
                    "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                    "message": forbidden}]}
        script = self.state.rollout_script.get(name)
        if script:
            return script[min(seen, len(script)) - 1](gen, replicas)
        if self.state.rollout == "ready":
            return {"observedGeneration": gen, "replicas": replicas, "updatedReplicas": replicas,
                    "availableReplicas": replicas, "readyReplicas": replicas}
        status: dict[str, Any] = {"observedGeneration": gen, "replicas": replicas, "updatedReplicas": replicas,
                                  "availableReplicas": 0}
        if self.state.rollout == "deadline":
            status["conditions"] = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                     "message": "ReplicaSet has timed out progressing."}]
        return status

    def _pod_security(self, obj: dict[str, Any]) -> str | None:
        """The admission message a pod of this workload gets in its namespace, or None if it is allowed."""
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        level = rules.enforced_level(self.state.objects.get(("", "namespaces", "", ns)), self.state.psa_default,
                                     self.state.psa_exempt)
        pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        violations = rules.pod_security_violations(pod, level)
        if not violations:
            return None
        return (f'pods "{obj["metadata"]["name"]}-5d8f7c9b4-x2x7q" is forbidden: violates PodSecurity '
                f'"{level}:latest": {", ".join(violations)}')

    def _apply(self, key: tuple[str, str, str, str], spec: tuple[str, str, str, str, bool], req: Request) -> None:
        st = self.state
        if req.content_type != "application/apply-patch+yaml":
            return self._send(415, _status(415, "UnsupportedMediaType", req.content_type))
        manager = req.param("fieldManager")
        if not manager:
            return self._send(422, _status(422, "Invalid", "fieldManager is required for apply requests"))
        body = copy.deepcopy(req.body or {})
        if key[3] in st.reject:
            return self._send(422, _status(422, "Invalid", f"{spec[3]} \"{key[3]}\" is invalid: spec: Required value"))
        if spec[4] and key[2] and ("", "namespaces", "", key[2]) not in st.objects:
            return self._send(404, _status(404, "NotFound", f"namespaces \"{key[2]}\" not found"))
        meta_in = body.get("metadata") or {}
        if meta_in.get("name") != key[3] or body.get("kind") != spec[3]:
            return self._send(400, _status(400, "BadRequest", "the name and kind of the object must match the URL"))
        if spec[3] == "Secret" and "stringData" in body:
            body.setdefault("data", {}).update({k: base64.b64encode(v.encode()).decode()
                                                for k, v in body.pop("stringData").items()})
        live = st.objects.get(key)
        force = req.param("force") == "true"
        try:
            rules.check_schema(body, strict=req.param("fieldValidation") == "Strict")
            merged, owners = self._merge(key, live, body, manager, force)
            merged["apiVersion"], merged["kind"] = body["apiVersion"], spec[3]
            merged["metadata"]["name"] = key[3]
            if spec[4]:
                merged["metadata"]["namespace"] = key[2]
            if spec[3] == "Deployment":
                merged.setdefault("spec", {}).setdefault("replicas", 1)  # the default, owned by no one
            rules.validate(merged)
            if live is not None:
                rules.check_immutable(live, merged)
        except rules.Refusal as refusal:
            return self._send(refusal.code, _status(refusal.code, refusal.reason, refusal.message))
        meta = merged["metadata"]
        unchanged = live is not None and _fields_of(live) == _fields_of(merged)
        if live is not None:
            meta["uid"] = live["metadata"]["uid"]
            meta["creationTimestamp"] = live["metadata"]["creationTimestamp"]
            spec_changed = {k: v for k, v in live.items() if k not in ("metadata", "status")} != {
                k: v for k, v in merged.items() if k not in ("metadata", "status")}
            meta["generation"] = live["metadata"]["generation"] + (1 if spec_changed else 0)
            meta["resourceVersion"] = live["metadata"]["resourceVersion"]
        else:
            meta["uid"] = f"uid-{key[3]}"
            meta["creationTimestamp"] = "2026-01-01T00:00:00Z"
            meta["generation"] = 1
        if not unchanged:
            meta["resourceVersion"] = str(st.version + 1)
        meta["managedFields"] = _managed_fields(owners, body["apiVersion"])
        if req.param("dryRun") != "All":
            if not unchanged:
                st.version += 1
            st.objects[key] = merged
            st.owners[key] = owners
            if spec[3] == "CustomResourceDefinition":
                self._serve(merged)
            if spec[3] == "HelmChart":
                for group, version, plural, kind, namespaced in st.charts.get(key[3], []):
                    self._serve({"metadata": {"name": f"{plural}.{group}"}, "spec": {
                        "group": group, "names": {"plural": plural, "kind": kind},
                        "scope": "Namespaced" if namespaced else "Cluster", "versions": [{"name": version}]}},
                        store=True)
        self._send(200 if live else 201, merged)

    def _merge(self, key: tuple[str, str, str, str], live: dict[str, Any] | None, body: dict[str, Any],
               manager: str, force: bool) -> tuple[dict[str, Any], dict[tuple[Any, ...], dict[str, str]]]:
        """Server-side apply: the applier's fields set, fields it owned and dropped removed (unless
        someone else owns them too), others' fields kept; a differing value owned by another manager
        is a conflict unless forced (then the applier takes it over)."""
        owners = copy.deepcopy(self.state.owners.get(key, {}))
        have = _fields_of(live) if live is not None else {}
        want = _fields_of(body)
        conflicts: dict[str, list[str]] = {}
        for path, value in want.items():
            others = [m for m in owners.get(path, {}) if m != manager]
            if others and path in have and have[path] != value:
                if not force:
                    for other in others:
                        conflicts.setdefault(other, []).append(_dotted(path))
                else:
                    owners[path] = {m: op for m, op in owners[path].items() if m == manager}
        if conflicts:
            count = sum(len(p) for p in conflicts.values())
            lines = "\n".join(f'- conflict with "{m}": {p}' for m, paths in conflicts.items() for p in paths)
            raise rules.Refusal(409, "Conflict", f"Apply failed with {count} conflict{'s' if count > 1 else ''}:\n"
                                f"{lines}")
        fields = dict(have)
        for path, who in list(owners.items()):
            if manager in who and path not in want:
                del who[manager]
                if not who:  # no one else wants it: the field goes
                    del owners[path]
                    fields.pop(path, None)
        for path, value in want.items():
            fields[path] = value
            owners.setdefault(path, {})[manager] = "Apply"
        # fields no one owns (defaults, objects made before) stay as they were: they are in ``have``
        merged = _build(fields)
        meta = merged.setdefault("metadata", {})
        for k in ("labels", "annotations"):
            if k in merged.get("metadata", {}) and not merged["metadata"][k]:
                del merged["metadata"][k]
        return {**merged, "metadata": meta}, owners

    def _serve(self, crd: dict[str, Any], store: bool = False) -> None:
        """A CRD's kind becomes discoverable (as the apiserver does once the CRD is created)."""
        spec = crd["spec"]
        for v in spec["versions"]:
            entry = (spec["group"], v["name"], spec["names"]["plural"], spec["names"]["kind"],
                     spec.get("scope") == "Namespaced")
            if entry not in self.state.resources:
                self.state.resources.append(entry)
        if store:
            crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", **crd}
            crd["metadata"].update({"uid": "uid-crd", "resourceVersion": "1", "generation": 1,
                                    "creationTimestamp": "2026-01-01T00:00:00Z"})
            self.state.objects[("apiextensions.k8s.io", "customresourcedefinitions", "",
                                crd["metadata"]["name"])] = crd


def _managed_fields(owners: dict[tuple[Any, ...], dict[str, str]], api_version: str) -> list[dict[str, Any]]:
    by_manager: dict[tuple[str, str], dict[str, Any]] = {}
    for path, who in sorted(owners.items(), key=lambda item: repr(item[0])):
        for manager, operation in who.items():
            target = by_manager.setdefault((manager, operation), {})
            for part in path:
                target = target.setdefault(f"f:{part}", {})
    return [{"manager": m, "operation": op, "apiVersion": api_version, "fieldsType": "FieldsV1", "fieldsV1": f}
            for (m, op), f in sorted(by_manager.items())]


class FakeKube:
    """Runs the fake API on 127.0.0.1 (a free port; or ``address``, where real machines reach it) in a
    thread; ``state`` holds objects and requests."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.state = State()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer((address, 0), handler)
        self.url = f"http://{address}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        for ns in ("default", "kube-system"):  # what every cluster has
            self.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, "", "namespaces")

    def __enter__(self) -> FakeKube:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def api_client(self) -> Any:
        from kubernetes import client

        conf = client.Configuration()
        conf.host = self.url
        return client.ApiClient(conf)

    def seed(self, obj: dict[str, Any], group: str, plural: str) -> None:
        """Put an object in the store as if someone had applied it before."""
        meta = obj["metadata"]
        stored = copy.deepcopy(obj)
        stored["metadata"].update({"uid": f"uid-{meta['name']}", "resourceVersion": "1", "generation": 1,
                                   "creationTimestamp": "2025-12-01T00:00:00Z"})
        self.state.objects[(group, plural, meta.get("namespace", ""), meta["name"])] = stored

    def add_kind(self, group: str, version: str, plural: str, kind: str, namespaced: bool) -> None:
        with self.state.lock:
            self.state.resources.append((group, version, plural, kind, namespaced))

    def update(self, key: tuple[str, str, str, str], manager: str, changes: dict[tuple[Any, ...], Any]) -> None:
        """A non-apply write (a controller or ``kubectl edit``): sets fields, the manager owns them (Update)."""
        obj = self.state.objects[key]
        fields = _fields_of(obj)
        owners = self.state.owners.setdefault(key, {})
        for path, value in changes.items():
            fields[path] = value
            owners[path] = {manager: "Update"}  # a write that changes a field takes it from its appliers
        rebuilt = _build(fields)
        rebuilt["metadata"] = {**obj["metadata"], **rebuilt.get("metadata", {}),
                               "resourceVersion": str(self.state.version + 1),
                               "managedFields": _managed_fields(owners, obj["apiVersion"])}
        rebuilt["apiVersion"], rebuilt["kind"] = obj["apiVersion"], obj["kind"]
        if {k: v for k, v in rebuilt.items() if k not in ("metadata", "status")} != {
                k: v for k, v in obj.items() if k not in ("metadata", "status")}:
            rebuilt["metadata"]["generation"] = obj["metadata"]["generation"] + 1
        self.state.version += 1
        self.state.objects[key] = rebuilt

    def writes(self) -> list[Request]:
        return [r for r in self.state.requests if r.method in ("PATCH", "DELETE")]
