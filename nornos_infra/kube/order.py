"""Apply order: what must exist before what.

Namespaces, then CRDs (which must be Established before any of their objects), then the other
cluster-scoped objects, then namespaced ones with dependencies first (a ServiceAccount and its
Secrets before the Deployment that uses them, NetworkPolicies before the pods they protect),
then custom resources, whose CRDs may come from a chart installed earlier in the same run.
"""

from __future__ import annotations

from nornos_infra.kube.model import Obj, ObjRef, group_of

BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "storage.k8s.io", "rbac.authorization.k8s.io",
    "apiextensions.k8s.io", "scheduling.k8s.io", "admissionregistration.k8s.io", "coordination.k8s.io",
    "discovery.k8s.io", "node.k8s.io", "certificates.k8s.io", "flowcontrol.apiserver.k8s.io", "resource.k8s.io",
})
NAMESPACES, CRDS, BUILTIN, CUSTOM = range(4)
KIND_RANK = {
    "PriorityClass": 0, "StorageClass": 0, "ClusterRole": 0, "ClusterRoleBinding": 1,
    "ServiceAccount": 2, "Secret": 3, "ConfigMap": 3, "PersistentVolumeClaim": 4, "Role": 4, "RoleBinding": 5,
    "NetworkPolicy": 6, "Service": 7, "Deployment": 8, "StatefulSet": 8, "DaemonSet": 8, "Job": 9, "CronJob": 9,
    "HorizontalPodAutoscaler": 10, "PodDisruptionBudget": 10, "Ingress": 11,
    # custom resources: charts first, they may bring the CRDs of the others (cert-manager: ClusterIssuer)
    "HelmChart": 0, "HelmChartConfig": 0,
}


def is_custom(obj: Obj) -> bool:
    return group_of(str(obj.get("apiVersion", ""))) not in BUILTIN_GROUPS


def phase(obj: Obj) -> int:
    kind = obj.get("kind")
    if kind == "Namespace":
        return NAMESPACES
    if kind == "CustomResourceDefinition":
        return CRDS
    return CUSTOM if is_custom(obj) else BUILTIN


def ordered(objs: list[Obj]) -> list[Obj]:
    """A stable apply order (same input, same order: plans and logs compare across runs)."""
    def key(obj: Obj) -> tuple[int, int, str, str, str]:
        ref = ObjRef.of(obj)
        return phase(obj), KIND_RANK.get(ref.kind, 50), ref.kind, ref.namespace, ref.name
    return sorted(objs, key=key)
