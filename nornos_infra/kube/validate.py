"""Validate rendered objects before anything reaches a cluster.

Two layers: the Kubernetes OpenAPI schema of the pinned k3s minor (kubernetes-validate, strict:
an unknown or misspelt field is an error, not silently dropped), with small schemas of our own for
the custom resources we ship (HelmChart, ClusterIssuer); then the project's rules (restricted
security, resources, probes, HPA ownership of replicas...), which a schema cannot express.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nornos_infra.errors import UserError
from nornos_infra.kube.model import Obj, ObjRef
from nornos_infra.kube.versions import KUBERNETES_MINOR


class ManifestError(UserError):
    """Rendered manifests that must not be applied; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{len(problems)} manifest problem(s): " + "; ".join(problems[:5]) + more)


# Custom resources we render: their CRDs come with k3s (HelmChart, HelmChartConfig) or with a chart (cert-manager,
# kube-prometheus-stack's PrometheusRule),
# so kubernetes-validate has no schema for them. These cover the fields we use and refuse others.
_STR = {"type": "string"}
_HELMCHART_SPEC = {
    "type": "object", "additionalProperties": False, "required": ["chart"],
    "properties": {k: _STR for k in ("chart", "repo", "version", "targetNamespace", "valuesContent", "timeout",
                                     "jobImage", "helmVersion", "chartContent", "repoCA", "failurePolicy",
                                     "authSecret", "dockerRegistrySecret", "repoCAConfigMap")}
    | {"bootstrap": {"type": "boolean"}, "createNamespace": {"type": "boolean"},
       "set": {"type": "object"}, "valuesSecrets": {"type": "array"}, "backOffLimit": {"type": "integer"},
       "insecureSkipTLSVerify": {"type": "boolean"}, "plainHTTP": {"type": "boolean"},
       "authPassCredentials": {"type": "boolean"}, "podSecurityContext": {"type": "object"},
       "securityContext": {"type": "object"}},
}
_ISSUER_SPEC = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "properties": {"acme": {
        "type": "object", "additionalProperties": False, "required": ["server", "privateKeySecretRef", "solvers"],
        "properties": {"server": {"type": "string", "pattern": "^https://"}, "email": _STR,
                       "privateKeySecretRef": {"type": "object", "required": ["name"]},
                       "solvers": {"type": "array", "minItems": 1}, "skipTLSVerify": {"type": "boolean"},
                       "preferredChain": _STR}},
        "ca": {"type": "object"}, "selfSigned": {"type": "object"}},
}
# our alert rules: each alert says how bad it is, what happened and where the runbook is
_ALERT_RULE = {
    "type": "object", "additionalProperties": False, "required": ["alert", "expr", "labels", "annotations"],
    "properties": {"alert": {"type": "string", "pattern": "^[A-Z][A-Za-z0-9]+$"}, "expr": _STR,
                   "for": {"type": "string", "pattern": "^[0-9]+[smhd]$"},
                   "labels": {"type": "object", "required": ["severity"],
                              "properties": {"severity": {"enum": ["critical", "warning"]}}},
                   "annotations": {"type": "object", "required": ["summary", "runbook"], "properties": {
                       "summary": _STR, "runbook": {"type": "string", "pattern": "^docs/RUNBOOK\\.md#[a-z0-9-]+$"}}}},
}
_RECORD_RULE = {"type": "object", "additionalProperties": False, "required": ["record", "expr"],
                "properties": {"record": _STR, "expr": _STR, "labels": {"type": "object"}}}
_RULES_SPEC = {
    "type": "object", "additionalProperties": False, "required": ["groups"],
    "properties": {"groups": {"type": "array", "minItems": 1, "items": {
        "type": "object", "additionalProperties": False, "required": ["name", "rules"],
        "properties": {"name": _STR, "interval": _STR,
                       "rules": {"type": "array", "minItems": 1, "items": {"oneOf": [_ALERT_RULE, _RECORD_RULE]}}}}}},
}
_METADATA = {"type": "object", "required": ["name"],
             "properties": {"name": _STR, "namespace": _STR, "labels": {"type": "object"},
                            "annotations": {"type": "object"}}}
CUSTOM_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("helm.cattle.io/v1", "HelmChart"): {
        "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": _STR, "kind": _STR, "metadata": _METADATA | {"required": ["name", "namespace"]},
                       "spec": _HELMCHART_SPEC}},
    ("helm.cattle.io/v1", "HelmChartConfig"): {
        "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": _STR, "kind": _STR, "metadata": _METADATA | {"required": ["name", "namespace"]},
                       "spec": {"type": "object", "additionalProperties": False, "required": ["valuesContent"],
                                "properties": {"valuesContent": _STR, "failurePolicy": _STR}}}},
    ("cert-manager.io/v1", "ClusterIssuer"): {
        "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": _STR, "kind": _STR, "metadata": _METADATA, "spec": _ISSUER_SPEC}},
    ("monitoring.coreos.com/v1", "PrometheusRule"): {
        "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": _STR, "kind": _STR, "metadata": _METADATA | {"required": ["name", "namespace"]},
                       "spec": _RULES_SPEC}},
}


def schema_problems(objs: Iterable[Obj], minor: str = KUBERNETES_MINOR) -> list[str]:
    """Strict schema validation of every object for Kubernetes ``minor``; one line per invalid object."""
    try:
        import jsonschema
        import kubernetes_validate
    except ImportError:
        raise UserError("kubernetes-validate is not installed; run `.venv/bin/pip install -e '.[dev]'`") from None
    problems = []
    for obj in objs:
        ref = ObjRef.of(obj)
        custom = CUSTOM_SCHEMAS.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
        try:
            if custom is not None:
                jsonschema.validate(obj, custom)
            else:
                kubernetes_validate.validate(obj, minor, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{ref}: {exc.message}; add a schema to nornos_infra/kube/validate.py or fix apiVersion")
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(object)"
            problems.append(f"{ref}: {where}: {exc.message}")
    return problems


# --- project rules -------------------------------------------------------------------------------------

def _pod_problems(ref: ObjRef, pod: dict[str, Any]) -> list[str]:
    out: list[str] = []
    psc = pod.get("securityContext") or {}
    bad = out.append
    if pod.get("automountServiceAccountToken") is not False:
        bad(f"{ref}: automountServiceAccountToken must be false on the pod")
    if pod.get("serviceAccountName") in (None, "", "default"):
        bad(f"{ref}: needs its own serviceAccountName (not default)")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            bad(f"{ref}: {host} is not allowed")
    if not pod.get("topologySpreadConstraints"):
        bad(f"{ref}: needs topologySpreadConstraints (spread over nodes)")
    for vol in pod.get("volumes") or []:
        if "hostPath" in vol:
            bad(f"{ref}: volume {vol.get('name')}: hostPath is not allowed")
    for c in pod.get("containers") or []:
        name = f"{ref}: container {c.get('name')}"
        csc = c.get("securityContext") or {}
        if csc.get("allowPrivilegeEscalation") is not False:
            bad(f"{name}: securityContext.allowPrivilegeEscalation must be false")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            bad(f"{name}: securityContext.capabilities.drop must include ALL")
        if (csc.get("capabilities") or {}).get("add"):
            bad(f"{name}: securityContext.capabilities.add is not allowed")
        if csc.get("privileged"):
            bad(f"{name}: privileged is not allowed")
        if csc.get("readOnlyRootFilesystem") is not True:
            bad(f"{name}: securityContext.readOnlyRootFilesystem must be true (mount an emptyDir for scratch)")
        if not (csc.get("runAsNonRoot") is True or (psc.get("runAsNonRoot") is True and "runAsNonRoot" not in csc)):
            bad(f"{name}: runAsNonRoot must be true")
        if csc.get("runAsUser", psc.get("runAsUser")) == 0:
            bad(f"{name}: runAsUser 0 (root) is not allowed")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad(f"{name}: seccompProfile.type must be RuntimeDefault or Localhost")
        res = c.get("resources") or {}
        for key in ("requests.cpu", "requests.memory", "limits.memory"):
            section, item = key.split(".")
            if not (res.get(section) or {}).get(item):
                bad(f"{name}: resources.{key} must be set")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if not c.get(probe):
                bad(f"{name}: {probe} must be set")
        image = str(c.get("image", ""))
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        if "@sha256:" not in image and tag in ("", "latest", "0.0.0"):
            bad(f"{name}: image {image!r} needs a fixed tag from the overlay (not latest or the base placeholder)")
    return out


def _matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    wanted = selector.get("matchLabels") or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def rule_problems(objs: list[Obj]) -> list[str]:
    """The project's rules over the whole set (some rules relate objects: an HPA and its Deployment)."""
    out: list[str] = []
    by_kind: dict[str, list[Obj]] = {}
    for obj in objs:
        by_kind.setdefault(str(obj.get("kind")), []).append(obj)

    def meta(o: Obj, key: str) -> Any:
        return (o.get("metadata") or {}).get(key)

    for secret in by_kind.get("Secret", []):
        out.append(f"{ObjRef.of(secret)}: Secrets must not be written under manifests/; they are generated "
                   "from secrets/<env>.sops.yaml at apply time (nornos_infra/kube/generated.py)")
    hpa_targets = {(meta(h, "namespace"), h["spec"]["scaleTargetRef"]["name"])
                   for h in by_kind.get("HorizontalPodAutoscaler", [])
                   if h.get("spec", {}).get("scaleTargetRef", {}).get("kind") == "Deployment"}
    accounts = {(meta(s, "namespace"), meta(s, "name")): s for s in by_kind.get("ServiceAccount", [])}
    for sa in accounts.values():
        if sa.get("automountServiceAccountToken") is not False:
            out.append(f"{ObjRef.of(sa)}: automountServiceAccountToken must be false")
    namespaces = {meta(n, "name"): n for n in by_kind.get("Namespace", [])}
    deny_all = {meta(p, "namespace") for p in by_kind.get("NetworkPolicy", [])
                if p.get("spec", {}).get("podSelector") == {}
                and set(p["spec"].get("policyTypes") or []) == {"Ingress", "Egress"}
                and not p["spec"].get("ingress") and not p["spec"].get("egress")}
    for dep in by_kind.get("Deployment", []):
        ref, ns, name = ObjRef.of(dep), meta(dep, "namespace"), meta(dep, "name")
        spec = dep.get("spec") or {}
        template = spec.get("template") or {}
        pod_labels = (template.get("metadata") or {}).get("labels") or {}
        if (ns, name) in hpa_targets and "replicas" in spec:
            out.append(f"{ref}: spec.replicas must be absent: HorizontalPodAutoscaler/{name} owns the scale "
                       "(every apply would reset it)")
        if (ns, name) not in hpa_targets:
            out.append(f"{ref}: needs a HorizontalPodAutoscaler")
        if not any(meta(p, "namespace") == ns and _matches(p.get("spec", {}).get("selector") or {}, pod_labels)
                   for p in by_kind.get("PodDisruptionBudget", [])):
            out.append(f"{ref}: needs a PodDisruptionBudget selecting its pods")
        sa_name = (template.get("spec") or {}).get("serviceAccountName")
        if sa_name and (ns, sa_name) not in accounts:
            out.append(f"{ref}: ServiceAccount {sa_name} is not rendered")
        if ns not in deny_all:
            out.append(f"{ref}: namespace {ns} has no default-deny NetworkPolicy")
        ns_obj = namespaces.get(ns)
        if ns_obj is None or (meta(ns_obj, "labels") or {}).get("pod-security.kubernetes.io/enforce") != "restricted":
            out.append(f"{ref}: namespace {ns} must be rendered with pod-security.kubernetes.io/enforce=restricted")
        out.extend(_pod_problems(ref, template.get("spec") or {}))
    for ing in by_kind.get("Ingress", []):
        ref, spec = ObjRef.of(ing), ing.get("spec") or {}
        hosts = {r.get("host") for r in spec.get("rules") or []}
        tls_hosts = {h for t in spec.get("tls") or [] for h in t.get("hosts") or []}
        if not hosts or not hosts <= tls_hosts:
            out.append(f"{ref}: every host needs TLS (spec.tls)")
        if not (meta(ing, "annotations") or {}).get("cert-manager.io/cluster-issuer"):
            out.append(f"{ref}: needs the cert-manager.io/cluster-issuer annotation")
        if spec.get("ingressClassName") != "traefik":
            out.append(f"{ref}: ingressClassName must be traefik")
    return out


def problems(objs: list[Obj], minor: str = KUBERNETES_MINOR,
             schema: Callable[[list[Obj], str], list[str]] = schema_problems) -> list[str]:
    return schema(objs, minor) + rule_problems(objs)


def check(objs: list[Obj], minor: str = KUBERNETES_MINOR) -> None:
    """Raise ManifestError listing every problem; return quietly when all is well."""
    found = problems(objs, minor)
    if found:
        raise ManifestError(found)
