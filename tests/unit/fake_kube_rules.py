"""What a real API server refuses, for the kinds this project applies (used by fake_kube.py).

- validation: the apiserver's own checks of enum values and cross-field rules (a Deployment's
  strategy, selector vs template labels, pod spec enums, Service types, ...);
- schema: kubernetes-validate's bundled Kubernetes 1.35 schema for types and, with
  ``fieldValidation=Strict``, unknown fields;
- immutable fields (a Deployment's selector, a StorageClass's provisioner and parameters, ...);
- Pod Security admission (``restricted`` and ``baseline``) for pod templates.

Messages follow the apiserver's wording closely enough that a reader recognises them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

Obj = dict[str, Any]
POD_TEMPLATE_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")
MINOR = "1.35"


class Refusal(Exception):
    """The API server's answer: HTTP status, reason and message (a Status object)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def _kind_name(obj: Obj) -> str:
    group = obj.get("apiVersion", "").split("/")[0] if "/" in obj.get("apiVersion", "") else ""
    kind = obj.get("kind", "")
    return f'{kind}.{group} "{obj["metadata"]["name"]}"' if group else f'{kind} "{obj["metadata"]["name"]}"'


def _invalid(obj: Obj, problems: list[str]) -> Refusal:
    return Refusal(422, "Invalid", f"{_kind_name(obj)} is invalid: {', '.join(problems)}")


# -- schema --------------------------------------------------------------------------------------------
@lru_cache(maxsize=2048)
def _schema_error(text: str) -> tuple[str, str] | None:
    import kubernetes_validate

    obj = json.loads(text)
    try:
        kubernetes_validate.validate(obj, MINOR, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return None  # a custom resource: its CRD has no structural schema here
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(p) for p in exc.path)
        return str(exc.validator), f"{where}: {exc.message}" if where else exc.message
    return None


def check_schema(obj: Obj, strict: bool) -> None:
    """Types always; unknown fields only with fieldValidation=Strict (else dropped with a warning)."""
    found = _schema_error(json.dumps(obj, sort_keys=True))
    if found is None:
        return
    validator, message = found
    if validator == "additionalProperties":
        if strict:
            raise Refusal(400, "BadRequest", f"{_kind_name(obj)}: strict decoding error: unknown field: {message}")
        return
    raise Refusal(422, "Invalid", f"{_kind_name(obj)} is invalid: {message}")


# -- the apiserver's validation ---------------------------------------------------------------------------
def _enum(problems: list[str], where: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        quoted = ", ".join(f'"{a}"' for a in allowed)
        problems.append(f'{where}: Unsupported value: "{value}": supported values: {quoted}')


def _pod_spec(problems: list[str], where: str, spec: Obj, restart_always: bool) -> None:
    containers = spec.get("containers") or []
    if not containers:
        problems.append(f"{where}.containers: Required value")
    names = [c.get("name") for c in containers + (spec.get("initContainers") or [])]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f'{where}.containers: Duplicate value: "{name}"')
    for i, c in enumerate(containers):
        _enum(problems, f"{where}.containers[{i}].imagePullPolicy", c.get("imagePullPolicy"),
              ("Always", "IfNotPresent", "Never"))
        for j, port in enumerate(c.get("ports") or []):
            _enum(problems, f"{where}.containers[{i}].ports[{j}].protocol", port.get("protocol"),
                  ("TCP", "UDP", "SCTP"))
    policy = spec.get("restartPolicy")
    if restart_always:
        _enum(problems, f"{where}.restartPolicy", policy, ("Always",))
    else:
        _enum(problems, f"{where}.restartPolicy", policy, ("Always", "OnFailure", "Never"))


def _selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values) or \
                (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def validate(obj: Obj) -> None:
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    problems: list[str] = []
    if kind in POD_TEMPLATE_KINDS:
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        selector = spec.get("selector")
        if kind != "Job":
            if not selector:
                problems.append("spec.selector: Required value")
            elif not _selector_matches(selector, labels):
                problems.append("spec.template.metadata.labels: Invalid value: "
                                f"{json.dumps(labels, sort_keys=True)}: `selector` does not match template `labels`")
        _pod_spec(problems, "spec.template.spec", template.get("spec") or {}, restart_always=kind != "Job")
    if kind == "Deployment":
        strategy = spec.get("strategy") or {}
        _enum(problems, "spec.strategy.type", strategy.get("type"), ("Recreate", "RollingUpdate"))
        if strategy.get("type") == "Recreate" and strategy.get("rollingUpdate") is not None:
            problems.append("spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
                            "'Recreate'")
    if kind == "Service":
        _enum(problems, "spec.type", spec.get("type"), ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"))
        for i, port in enumerate(spec.get("ports") or []):
            _enum(problems, f"spec.ports[{i}].protocol", port.get("protocol"), ("TCP", "UDP", "SCTP"))
    if kind == "NetworkPolicy":
        for i, t in enumerate(spec.get("policyTypes") or []):
            _enum(problems, f"spec.policyTypes[{i}]", t, ("Ingress", "Egress"))
    if kind == "PodDisruptionBudget" and spec.get("minAvailable") is not None \
            and spec.get("maxUnavailable") is not None:
        problems.append("spec: Invalid value: minAvailable and maxUnavailable cannot be both set")
    if kind == "HorizontalPodAutoscaler":
        for i, metric in enumerate(spec.get("metrics") or []):
            _enum(problems, f"spec.metrics[{i}].type", metric.get("type"),
                  ("ContainerResource", "External", "Object", "Pods", "Resource"))
    if kind == "Ingress":
        for i, rule in enumerate(spec.get("rules") or []):
            for j, path in enumerate((rule.get("http") or {}).get("paths") or []):
                _enum(problems, f"spec.rules[{i}].http.paths[{j}].pathType", path.get("pathType"),
                      ("Exact", "ImplementationSpecific", "Prefix"))
    if kind == "StorageClass":
        _enum(problems, "reclaimPolicy", obj.get("reclaimPolicy"), ("Delete", "Retain"))
        _enum(problems, "volumeBindingMode", obj.get("volumeBindingMode"), ("Immediate", "WaitForFirstConsumer"))
    if problems:
        raise _invalid(obj, problems)


# -- immutable fields ---------------------------------------------------------------------------------------
IMMUTABLE: dict[str, tuple[tuple[str, ...], ...]] = {
    "Deployment": (("spec", "selector"),),
    "ReplicaSet": (("spec", "selector"),),
    "DaemonSet": (("spec", "selector"),),
    "StatefulSet": (("spec", "selector"), ("spec", "serviceName"), ("spec", "volumeClaimTemplates"),
                    ("spec", "podManagementPolicy")),
    "Job": (("spec", "selector"), ("spec", "template")),
    "StorageClass": (("provisioner",), ("parameters",), ("reclaimPolicy",), ("volumeBindingMode",)),
    "RoleBinding": (("roleRef",),),
    "ClusterRoleBinding": (("roleRef",),),
    "PersistentVolumeClaim": (("spec", "accessModes"), ("spec", "storageClassName"), ("spec", "volumeName"),
                              ("spec", "selector"), ("spec", "volumeMode")),
}


def _at(obj: Obj, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)  # type: ignore[assignment]
    return obj


def check_immutable(live: Obj, merged: Obj) -> None:
    problems = [f"{'.'.join(path)}: Invalid value: {json.dumps(_at(merged, path), sort_keys=True)}: field is immutable"
                for path in IMMUTABLE.get(str(merged.get("kind")), ())
                if _at(live, path) != _at(merged, path)]
    if merged.get("kind") in ("Secret", "ConfigMap") and live.get("immutable"):
        for field in ("data", "binaryData", "stringData"):
            if live.get(field) != merged.get(field):
                problems.append(f"{field}: Forbidden: field is immutable when `immutable` is set")
        if not merged.get("immutable"):
            problems.append("immutable: Forbidden: field is immutable when `immutable` is set")
    if problems:
        raise _invalid(merged, problems)


# -- Pod Security admission --------------------------------------------------------------------------------
SAFE_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                "secret", "name"}
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                 "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def pod_security_violations(pod: Obj, level: str) -> list[str]:
    """The Pod Security Standards checks (baseline, and restricted on top) for one pod spec."""
    if level == "privileged":
        return []
    out: list[str] = []
    containers = (pod.get("containers") or []) + (pod.get("initContainers") or [])
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"host namespaces ({key}=true)")
    if any((c.get("securityContext") or {}).get("privileged") for c in containers):
        out.append("privileged (containers must not set securityContext.privileged=true)")
    added = {cap for c in containers for cap in ((c.get("securityContext") or {}).get("capabilities") or {}).get(
        "add") or []}
    if added - BASELINE_CAPS:
        out.append(f"non-default capabilities ({', '.join(sorted(added - BASELINE_CAPS))})")
    if any(v.get("hostPath") for v in pod.get("volumes") or []):
        out.append("hostPath volumes")
    if any(p.get("hostPort") for c in containers for p in c.get("ports") or []):
        out.append("hostPort")
    if level != "restricted":
        return out
    for v in pod.get("volumes") or []:
        if not set(v) <= SAFE_VOLUMES:
            out.append(f"restricted volume types ({', '.join(sorted(set(v) - SAFE_VOLUMES))})")
    for c in containers:
        sc = c.get("securityContext") or {}
        name = c.get("name")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f'allowPrivilegeEscalation != false (container "{name}" must set '
                       "securityContext.allowPrivilegeEscalation=false)")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f'unrestricted capabilities (container "{name}" must set securityContext.capabilities.drop='
                       '["ALL"])')
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f'unrestricted capabilities (container "{name}" must not add capabilities other than '
                       "NET_BIND_SERVICE)")
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        if non_root is not True:
            out.append(f'runAsNonRoot != true (container "{name}" must set securityContext.runAsNonRoot=true)')
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f'runAsUser=0 (container "{name}" must not set runAsUser=0)')
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f'seccompProfile (container "{name}" must set securityContext.seccompProfile.type to '
                       '"RuntimeDefault" or "Localhost")')
    return out


def enforced_level(namespace: Obj | None, default: str, exempt: tuple[str, ...]) -> str:
    """The namespace's pod-security.kubernetes.io/enforce label, else the cluster default (k3s psa.yaml)."""
    if namespace is None:
        return default
    name = namespace["metadata"]["name"]
    if name in exempt:
        return "privileged"
    labels = namespace["metadata"].get("labels") or {}
    return str(labels.get("pod-security.kubernetes.io/enforce", default))
