"""The apply order (nornos_infra/kube/order.py), exactly: namespaces, CRDs, cluster-wide objects,
then what pods depend on before the pods, then what refers to the pods, and custom resources last
with the charts that bring other CRDs first. The same set in any order gives the same sequence."""

from __future__ import annotations

import random

from nornos_infra.kube.model import Obj, ObjRef
from nornos_infra.kube.order import ordered

KINDS = [  # (apiVersion, kind, namespace, name), in the order they must be applied
    ("v1", "Namespace", "", "monitoring"),
    ("v1", "Namespace", "", "nornos"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "widgets.example.org"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "", "reader"),
    ("scheduling.k8s.io/v1", "PriorityClass", "", "high"),
    ("storage.k8s.io/v1", "StorageClass", "", "encrypted"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "reader"),
    ("v1", "ServiceAccount", "nornos", "app"),
    ("v1", "ConfigMap", "nornos", "settings"),
    ("v1", "Secret", "monitoring", "z-token"),
    ("v1", "Secret", "nornos", "a-db"),
    ("v1", "Secret", "nornos", "b-redis"),
    ("v1", "PersistentVolumeClaim", "nornos", "data"),
    ("rbac.authorization.k8s.io/v1", "Role", "nornos", "reader"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "nornos", "reader"),
    ("networking.k8s.io/v1", "NetworkPolicy", "nornos", "default-deny-all"),
    ("v1", "Service", "nornos", "app"),
    ("apps/v1", "DaemonSet", "nornos", "agent"),
    ("apps/v1", "Deployment", "nornos", "app"),
    ("apps/v1", "StatefulSet", "nornos", "db"),
    ("batch/v1", "CronJob", "nornos", "backup"),
    ("batch/v1", "Job", "nornos", "migrate"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "nornos", "app"),
    ("policy/v1", "PodDisruptionBudget", "nornos", "app"),
    ("networking.k8s.io/v1", "Ingress", "nornos", "app"),
    # built-in kinds without a rank (every built-in API group): after the ranked ones, by kind
    ("certificates.k8s.io/v1", "CertificateSigningRequest", "", "node-csr"),
    ("resource.k8s.io/v1", "DeviceClass", "", "gpu"),
    ("discovery.k8s.io/v1", "EndpointSlice", "nornos", "app-1"),
    ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema", "", "nornos"),
    ("coordination.k8s.io/v1", "Lease", "nornos", "leader"),
    ("v1", "LimitRange", "nornos", "defaults"),
    ("node.k8s.io/v1", "RuntimeClass", "", "gvisor"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "", "nornos"),
    ("helm.cattle.io/v1", "HelmChart", "kube-system", "cert-manager"),
    ("helm.cattle.io/v1", "HelmChartConfig", "kube-system", "traefik"),
    ("cert-manager.io/v1", "ClusterIssuer", "", "letsencrypt"),
    ("example.org/v1", "Widget", "nornos", "w"),
]


def objects() -> list[Obj]:
    out = []
    for api_version, kind, namespace, name in KINDS:
        meta = {"name": name, **({"namespace": namespace} if namespace else {})}
        out.append({"apiVersion": api_version, "kind": kind, "metadata": meta})
    return out


def test_the_apply_order_is_exact_whatever_the_input_order() -> None:
    expected = [ObjRef.of(o) for o in objects()]
    rng = random.Random(16)
    for _ in range(5):
        shuffled = objects()
        rng.shuffle(shuffled)
        assert [ObjRef.of(o) for o in ordered(shuffled)] == expected
