"""Every project rule (nornos_infra/kube/validate.py), one violation at a time on the real production
overlay: the exact line a person reads, and nothing else reported. What is allowed is checked too
(a pod-level setting a container inherits, a digest instead of a tag, a registry with a port)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from nornos_infra.kube import validate
from nornos_infra.kube.model import Obj
from nornos_infra.kube.render import render

_RENDERED: list[Obj] = []
DEP = "Deployment.apps nornos/doctor-app"
CONTAINER = f"{DEP}: container doctor-app"


def production() -> list[Obj]:
    if not _RENDERED:
        _RENDERED.extend(render("production"))
    return copy.deepcopy(_RENDERED)


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def pod(objs: list[Obj]) -> Any:
    return find(objs, "Deployment", "doctor-app")["spec"]["template"]["spec"]


def container(objs: list[Obj]) -> Any:
    return pod(objs)["containers"][0]


def csc(objs: list[Obj]) -> Any:
    return container(objs)["securityContext"]


Change = Callable[[list[Obj]], Any]

VIOLATIONS: list[tuple[str, Change, str]] = [
    ("automount", lambda o: pod(o).pop("automountServiceAccountToken"),
     f"{DEP}: automountServiceAccountToken must be false on the pod"),
    ("default account", lambda o: (pod(o).__setitem__("serviceAccountName", "default"), o.append(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "nornos"},
         "automountServiceAccountToken": False})),
     f"{DEP}: needs its own serviceAccountName (not default)"),
    ("empty account", lambda o: pod(o).__setitem__("serviceAccountName", ""),
     f"{DEP}: needs its own serviceAccountName (not default)"),
    ("no account", lambda o: pod(o).pop("serviceAccountName"),
     f"{DEP}: needs its own serviceAccountName (not default)"),
    ("hostNetwork", lambda o: pod(o).__setitem__("hostNetwork", True), f"{DEP}: hostNetwork is not allowed"),
    ("hostPID", lambda o: pod(o).__setitem__("hostPID", True), f"{DEP}: hostPID is not allowed"),
    ("hostIPC", lambda o: pod(o).__setitem__("hostIPC", True), f"{DEP}: hostIPC is not allowed"),
    ("spread", lambda o: pod(o).pop("topologySpreadConstraints"),
     f"{DEP}: needs topologySpreadConstraints (spread over nodes)"),
    ("hostPath", lambda o: pod(o)["volumes"].append({"name": "root", "hostPath": {"path": "/"}}),
     f"{DEP}: volume root: hostPath is not allowed"),
    ("escalation", lambda o: csc(o).__setitem__("allowPrivilegeEscalation", True),
     f"{CONTAINER}: securityContext.allowPrivilegeEscalation must be false"),
    ("drop", lambda o: csc(o).pop("capabilities"), f"{CONTAINER}: securityContext.capabilities.drop must include ALL"),
    ("add", lambda o: csc(o)["capabilities"].__setitem__("add", ["NET_ADMIN"]),
     f"{CONTAINER}: securityContext.capabilities.add is not allowed"),
    ("privileged", lambda o: csc(o).__setitem__("privileged", True), f"{CONTAINER}: privileged is not allowed"),
    ("read-only root", lambda o: csc(o).__setitem__("readOnlyRootFilesystem", False),
     f"{CONTAINER}: securityContext.readOnlyRootFilesystem must be true (mount an emptyDir for scratch)"),
    ("non-root off", lambda o: csc(o).__setitem__("runAsNonRoot", False), f"{CONTAINER}: runAsNonRoot must be true"),
    ("non-root nowhere", lambda o: (csc(o).pop("runAsNonRoot"), pod(o)["securityContext"].pop("runAsNonRoot")),
     f"{CONTAINER}: runAsNonRoot must be true"),
    ("root user", lambda o: csc(o).__setitem__("runAsUser", 0), f"{CONTAINER}: runAsUser 0 (root) is not allowed"),
    ("root user on the pod", lambda o: pod(o)["securityContext"].__setitem__("runAsUser", 0),
     f"{CONTAINER}: runAsUser 0 (root) is not allowed"),
    ("seccomp", lambda o: csc(o).__setitem__("seccompProfile", {"type": "Unconfined"}),
     f"{CONTAINER}: seccompProfile.type must be RuntimeDefault or Localhost"),
    ("seccomp nowhere", lambda o: (csc(o).pop("seccompProfile"), pod(o)["securityContext"].pop("seccompProfile")),
     f"{CONTAINER}: seccompProfile.type must be RuntimeDefault or Localhost"),
    ("cpu request", lambda o: container(o)["resources"]["requests"].pop("cpu"),
     f"{CONTAINER}: resources.requests.cpu must be set"),
    ("memory request", lambda o: container(o)["resources"]["requests"].pop("memory"),
     f"{CONTAINER}: resources.requests.memory must be set"),
    ("startup", lambda o: container(o).pop("startupProbe"), f"{CONTAINER}: startupProbe must be set"),
    ("liveness", lambda o: container(o).pop("livenessProbe"), f"{CONTAINER}: livenessProbe must be set"),
    ("untagged", lambda o: container(o).__setitem__("image", "ghcr.io/nornos/doctor-app"),
     f"{CONTAINER}: image 'ghcr.io/nornos/doctor-app' needs a fixed tag from the overlay "
     "(not latest or the base placeholder)"),
    ("placeholder", lambda o: container(o).__setitem__("image", "ghcr.io/nornos/doctor-app:0.0.0"),
     f"{CONTAINER}: image 'ghcr.io/nornos/doctor-app:0.0.0' needs a fixed tag from the overlay "
     "(not latest or the base placeholder)"),
    ("port, no tag", lambda o: container(o).__setitem__("image", "registry:5000/nornos/doctor-app"),
     f"{CONTAINER}: image 'registry:5000/nornos/doctor-app' needs a fixed tag from the overlay "
     "(not latest or the base placeholder)"),
    ("port and latest", lambda o: container(o).__setitem__("image", "registry:5000/nornos/doctor-app:latest"),
     f"{CONTAINER}: image 'registry:5000/nornos/doctor-app:latest' needs a fixed tag from the overlay "
     "(not latest or the base placeholder)"),
    ("short name, latest", lambda o: container(o).__setitem__("image", "nginx:latest"),
     f"{CONTAINER}: image 'nginx:latest' needs a fixed tag from the overlay (not latest or the base placeholder)"),
    ("no image", lambda o: container(o).pop("image"),
     f"{CONTAINER}: image '' needs a fixed tag from the overlay (not latest or the base placeholder)"),
    ("account not rendered", lambda o: o.remove(find(o, "ServiceAccount", "doctor-app")),
     f"{DEP}: ServiceAccount doctor-app is not rendered"),
    ("account token", lambda o: find(o, "ServiceAccount", "doctor-app").__setitem__(
        "automountServiceAccountToken", True),
     "ServiceAccount nornos/doctor-app: automountServiceAccountToken must be false"),
    ("no HPA", lambda o: o.remove(find(o, "HorizontalPodAutoscaler", "doctor-app")),
     f"{DEP}: needs a HorizontalPodAutoscaler"),
    ("HPA of another kind", lambda o: find(o, "HorizontalPodAutoscaler", "doctor-app")["spec"]["scaleTargetRef"]
     .__setitem__("kind", "StatefulSet"), f"{DEP}: needs a HorizontalPodAutoscaler"),
    ("no PDB", lambda o: o.remove(find(o, "PodDisruptionBudget", "doctor-app")),
     f"{DEP}: needs a PodDisruptionBudget selecting its pods"),
    ("PDB selecting nothing", lambda o: find(o, "PodDisruptionBudget", "doctor-app")["spec"].__setitem__(
        "selector", {"matchLabels": {}}), f"{DEP}: needs a PodDisruptionBudget selecting its pods"),
    ("PDB selecting other pods", lambda o: find(o, "PodDisruptionBudget", "doctor-app")["spec"].__setitem__(
        "selector", {"matchLabels": {"app.kubernetes.io/name": "doctor-app", "tier": "x"}}),
     f"{DEP}: needs a PodDisruptionBudget selecting its pods"),
    ("PDB in another namespace", lambda o: find(o, "PodDisruptionBudget", "doctor-app")["metadata"].__setitem__(
        "namespace", "monitoring"), f"{DEP}: needs a PodDisruptionBudget selecting its pods"),
    ("host without TLS", lambda o: find(o, "Ingress", "doctor-app")["spec"]["rules"].append(
        {"host": "other.nornos.health", "http": find(o, "Ingress", "doctor-app")["spec"]["rules"][0]["http"]}),
     "Ingress.networking.k8s.io nornos/doctor-app: every host needs TLS (spec.tls)"),
    ("no TLS", lambda o: find(o, "Ingress", "doctor-app")["spec"].pop("tls"),
     "Ingress.networking.k8s.io nornos/doctor-app: every host needs TLS (spec.tls)"),
    ("no issuer", lambda o: find(o, "Ingress", "doctor-app")["metadata"]["annotations"].pop(
        "cert-manager.io/cluster-issuer"),
     "Ingress.networking.k8s.io nornos/doctor-app: needs the cert-manager.io/cluster-issuer annotation"),
    ("ingress class", lambda o: find(o, "Ingress", "doctor-app")["spec"].__setitem__("ingressClassName", "nginx"),
     "Ingress.networking.k8s.io nornos/doctor-app: ingressClassName must be traefik"),
    ("secret", lambda o: o.append({"apiVersion": "v1", "kind": "Secret",
                                   "metadata": {"name": "x", "namespace": "nornos"}}),
     "Secret nornos/x: Secrets must not be written under manifests/; they are generated from "
     "secrets/<env>.sops.yaml at apply time (nornos_infra/kube/generated.py)"),
]


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _, c, e in VIOLATIONS], ids=[i for i, _, _ in VIOLATIONS])
def test_each_rule_reports_one_exact_line(change: Change, expected: str) -> None:
    objs = production()
    change(objs)
    assert validate.rule_problems(objs) == [expected]


ALLOWED: list[tuple[str, Change]] = [
    ("non-root from the pod", lambda o: csc(o).pop("runAsNonRoot")),
    ("seccomp from the pod", lambda o: csc(o).pop("seccompProfile")),
    ("Localhost seccomp", lambda o: csc(o).__setitem__("seccompProfile", {"type": "Localhost",
                                                                           "localhostProfile": "p.json"})),
    ("digest", lambda o: container(o).__setitem__("image", "ghcr.io/nornos/doctor-app@sha256:" + "a" * 64)),
    ("port and tag", lambda o: container(o).__setitem__("image", "registry:5000/nornos/doctor-app:1.2.3")),
    ("short name and tag", lambda o: container(o).__setitem__("image", "nginx:1.27")),
    ("privileged false", lambda o: csc(o).__setitem__("privileged", False)),
    ("empty add", lambda o: csc(o)["capabilities"].__setitem__("add", [])),
    ("hostNetwork false", lambda o: pod(o).__setitem__("hostNetwork", False)),
]


@pytest.mark.parametrize("change", [c for _, c in ALLOWED], ids=[i for i, _ in ALLOWED])
def test_what_the_rules_allow(change: Change) -> None:
    objs = production()
    change(objs)
    assert validate.rule_problems(objs) == []


def test_a_root_user_on_the_container_wins_over_the_pod() -> None:
    objs = production()
    pod(objs)["securityContext"]["runAsUser"] = 0
    csc(objs)["runAsUser"] = 10001
    assert validate.rule_problems(objs) == []


def test_a_container_saying_non_root_false_is_not_saved_by_the_pod() -> None:
    objs = production()
    csc(objs)["runAsNonRoot"] = None  # present, not true: the pod-level true does not apply
    assert validate.rule_problems(objs) == [f"{CONTAINER}: runAsNonRoot must be true"]


def test_namespace_rules_name_every_deployment_in_it() -> None:
    objs = production()
    objs.remove(find(objs, "NetworkPolicy", "default-deny-all"))
    apps = sorted(o["metadata"]["name"] for o in objs if o["kind"] == "Deployment")
    assert sorted(validate.rule_problems(objs)) == [
        f"Deployment.apps nornos/{app}: namespace nornos has no default-deny NetworkPolicy" for app in apps]

    objs = production()
    find(objs, "Namespace", "nornos")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "baseline"
    assert sorted(validate.rule_problems(objs)) == [
        f"Deployment.apps nornos/{app}: namespace nornos must be rendered with "
        "pod-security.kubernetes.io/enforce=restricted" for app in apps]

    objs = production()
    objs.remove(find(objs, "Namespace", "nornos"))
    assert len(validate.rule_problems(objs)) == len(apps)


def test_a_default_deny_policy_must_deny_both_ways_and_allow_nothing() -> None:
    for change in (lambda p: p["spec"].__setitem__("policyTypes", ["Ingress"]),
                   lambda p: p["spec"].__setitem__("podSelector", {"matchLabels": {"a": "b"}}),
                   lambda p: p["spec"].__setitem__("ingress", [{}]),
                   lambda p: p["spec"].__setitem__("egress", [{}])):
        objs = production()
        change(find(objs, "NetworkPolicy", "default-deny-all"))
        found = validate.rule_problems(objs)
        assert found and all(p.endswith("namespace nornos has no default-deny NetworkPolicy") for p in found)


def test_many_problems_read_as_the_first_five_and_a_count() -> None:
    problems = [f"p{i}" for i in range(8)]
    err = validate.ManifestError(problems)
    assert err.problems == problems
    assert str(err) == "8 manifest problem(s): p0; p1; p2; p3; p4 (and 3 more)"
    assert str(validate.ManifestError(problems[:5])) == "5 manifest problem(s): p0; p1; p2; p3; p4"
    assert str(validate.ManifestError(problems[:6])) == "6 manifest problem(s): p0; p1; p2; p3; p4 (and 1 more)"


def test_check_raises_with_every_problem_and_is_quiet_when_all_is_well() -> None:
    objs = production()
    validate.check(objs)
    pod(objs)["hostPID"] = True
    container(objs)["image"] = "ghcr.io/nornos/doctor-app:latest"
    with pytest.raises(validate.ManifestError) as err:
        validate.check(objs)
    assert err.value.problems == [f"{DEP}: hostPID is not allowed",
                                  f"{CONTAINER}: image 'ghcr.io/nornos/doctor-app:latest' needs a fixed tag from "
                                  "the overlay (not latest or the base placeholder)"]


def test_sets_without_some_kinds_or_with_bare_objects_are_judged_not_crashed_on() -> None:
    assert validate.rule_problems([]) == []
    assert validate.rule_problems([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}]) == []
    bare = [{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}},
            {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"}, "spec": {}},
            {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p", "namespace": "x"}},
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "x"}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "x"}}]
    found = validate.rule_problems(bare)
    assert "Deployment.apps x/d: needs a HorizontalPodAutoscaler" in found
    assert "Deployment.apps x/d: needs a PodDisruptionBudget selecting its pods" in found
    assert "Deployment.apps x/d: namespace x has no default-deny NetworkPolicy" in found
    assert "Ingress.networking.k8s.io x/i: every host needs TLS (spec.tls)" in found


def test_check_validates_against_the_kubernetes_minor_given() -> None:
    from kubernetes_validate.utils import VersionNotSupportedError

    objs = production()
    validate.check(objs)
    with pytest.raises(VersionNotSupportedError) as err:
        validate.check(objs, minor="1.99")  # newer than any schema kubernetes-validate has
    assert err.value.version == "1.99"
