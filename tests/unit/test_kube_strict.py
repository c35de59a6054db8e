"""The apply step against a fake API server that refuses what a real one refuses (fake_kube_rules.py),
and rollouts that take their time.

Each refusal is checked twice: the fake answers as a real API server would (status, reason,
message), and the product's apply step reports it as one line and stops before prune.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from nornos_infra.kube.apply import Timing, apply_objects, wait_rollouts
from nornos_infra.kube.cluster import Cluster
from nornos_infra.kube.model import FIELD_MANAGER, ObjRef
from nornos_infra.kube.rollout import deployment_status
from tests.unit.fake_kube import FakeKube, lagging

NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nornos", "labels": {
    "pod-security.kubernetes.io/enforce": "restricted"}}}
RESTRICTED_POD: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "app", "image": "registry.example/app:1.0", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
}


def deployment(name: str = "app", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "nornos"},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": copy.deepcopy(RESTRICTED_POD)}, **spec}}


def fast(rollout_timeout: float = 5) -> Timing:
    return Timing(rollout_timeout=rollout_timeout, crd_timeout=1, poll=0.01)


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


@pytest.fixture
def cluster(kube: FakeKube) -> Cluster:
    return Cluster(kube.api_client())


def apply(cluster: Cluster, *objs: dict[str, Any], rollout_timeout: float = 5) -> Any:
    return apply_objects(cluster, [NS, *copy.deepcopy(list(objs))], "dev", timing=fast(rollout_timeout), prune=False)


def raw_apply(kube: FakeKube, obj: dict[str, Any], manager: str = "someone", force: bool = False,
              strict: bool = False) -> dict[str, Any]:
    """A server-side apply as another client would send it (no force, no strict unless asked)."""
    from kubernetes import dynamic

    dyn = dynamic.DynamicClient(kube.api_client())
    res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    params = [("fieldValidation", "Strict")] if strict else []
    out = dyn.server_side_apply(res, body=obj, name=obj["metadata"]["name"],
                                namespace=obj["metadata"].get("namespace"), field_manager=manager,
                                force_conflicts=force, query_params=params)
    result: dict[str, Any] = out.to_dict()
    return result


def stored(kube: FakeKube, name: str = "app") -> dict[str, Any]:
    return kube.state.objects[("apps", "deployments", "nornos", name)]


# -- immutable fields -------------------------------------------------------------------------------------
def test_a_deployment_selector_cannot_change(kube: FakeKube, cluster: Cluster) -> None:
    assert apply(cluster, deployment()).ok
    report = apply(cluster, deployment(labels={"app": "app", "tier": "web"}))
    assert not report.ok
    error, = report.errors
    assert error.startswith("Deployment.apps nornos/app: apply failed: 422 Deployment.apps \"app\" is invalid: "
                            "spec.selector: Invalid value: ")
    assert error.endswith("field is immutable")
    assert stored(kube)["spec"]["selector"] == {"matchLabels": {"app": "app"}}


def test_a_storage_class_provisioner_and_parameters_cannot_change(kube: FakeKube, cluster: Cluster) -> None:
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
          "provisioner": "csi.hetzner.cloud", "parameters": {"csi.storage.k8s.io/fstype": "ext4"},
          "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"}
    assert apply(cluster, sc).ok
    for change in ({"provisioner": "other.csi"}, {"parameters": {"csi.storage.k8s.io/fstype": "xfs"}},
                   {"reclaimPolicy": "Delete"}):
        report = apply(cluster, {**sc, **change})
        field = next(iter(change))
        assert [f"{field}: " in e and "field is immutable" in e for e in report.errors] == [True], report.errors
    # labels are not immutable
    assert apply(cluster, {**sc, "metadata": {"name": "fast", "labels": {"tier": "ssd"}}}).ok


# -- schema, strict field validation, enums ---------------------------------------------------------------
def test_unknown_fields_are_refused_when_strict(kube: FakeKube, cluster: Cluster) -> None:
    typo = deployment()
    typo["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    report = apply(cluster, typo)
    error, = report.errors
    assert "apply failed: 400" in error and "strict decoding error: unknown field" in error
    assert "imagePulPolicy" in error
    assert ("apps", "deployments", "nornos", "app") not in kube.state.objects
    # the product always sends Strict; a client that does not gets the object stored
    raw_apply(kube, typo)
    assert ("apps", "deployments", "nornos", "app") in kube.state.objects


def test_wrong_types_are_refused_even_without_strict(kube: FakeKube, cluster: Cluster) -> None:
    apply(cluster)
    with pytest.raises(ApiException) as err:
        raw_apply(kube, deployment(replicas="three"))
    assert err.value.status == 422


@pytest.mark.parametrize("change, message", [
    ({"strategy": {"type": "BlueGreen"}}, 'spec.strategy.type: Unsupported value: "BlueGreen"'),
    ({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}, "may not be specified when strategy"),
])
def test_invalid_values_are_refused(cluster: Cluster, change: dict[str, Any], message: str) -> None:
    report = apply(cluster, deployment(**change))
    error, = report.errors
    assert "apply failed: 422" in error and message in error


def test_selector_must_match_the_template(cluster: Cluster) -> None:
    dep = deployment()
    dep["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    error, = apply(cluster, dep).errors
    assert "`selector` does not match template `labels`" in error


def test_a_refused_object_stops_the_apply_before_what_follows(kube: FakeKube, cluster: Cluster) -> None:
    bad = deployment(name="a-bad", strategy={"type": "Sometimes"})
    report = apply(cluster, bad, deployment(name="b-good"))
    assert [ref.name for ref, _ in report.actions] == ["nornos"]
    assert ("apps", "deployments", "nornos", "b-good") not in kube.state.objects
    assert report.rollouts == []


# -- field managers --------------------------------------------------------------------------------------
def test_a_conflict_without_force_is_409_and_force_takes_the_field_over(kube: FakeKube, cluster: Cluster) -> None:
    apply(cluster)
    raw_apply(kube, deployment(replicas=2), manager="kubectl-client-side-apply")
    with pytest.raises(ApiException) as err:
        raw_apply(kube, deployment(replicas=5), manager="ops")
    assert err.value.status == 409
    assert json.loads(err.value.body)["message"] == ('Apply failed with 1 conflict:\n- conflict with '
                                                     '"kubectl-client-side-apply": .spec.replicas')
    assert stored(kube)["spec"]["replicas"] == 2
    # the same value is no conflict: ownership is shared
    raw_apply(kube, deployment(replicas=2), manager="ops")
    # the product forces: it takes the field over
    assert apply(cluster, deployment(replicas=3)).ok
    assert stored(kube)["spec"]["replicas"] == 3
    owners = {m["manager"] for m in stored(kube)["metadata"]["managedFields"]
              if "f:replicas" in m["fieldsV1"].get("f:spec", {})}
    assert owners == {FIELD_MANAGER}


def test_replicas_dropped_from_the_body_go_unless_someone_else_owns_them(kube: FakeKube, cluster: Cluster) -> None:
    assert apply(cluster, deployment(replicas=3)).ok
    assert stored(kube)["spec"]["replicas"] == 3
    assert apply(cluster, deployment()).ok  # replicas no longer in the manifest: back to the default
    assert stored(kube)["spec"]["replicas"] == 1
    # the HPA scales it (an Update by the controller manager); the next apply without replicas keeps that
    kube.update(("apps", "deployments", "nornos", "app"), "kube-controller-manager", {("spec", "replicas"): 4})
    report = apply(cluster, deployment())
    assert report.ok and report.actions[-1][1] == "unchanged"
    assert stored(kube)["spec"]["replicas"] == 4


# -- kinds that are not served ----------------------------------------------------------------------------
def test_a_kind_without_its_crd_is_not_applied(kube: FakeKube, cluster: Cluster) -> None:
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
               "metadata": {"name": "app", "namespace": "nornos"}, "spec": {"selector": {}}}
    report = apply(cluster, monitor)
    error, = report.errors
    assert error == ("ServiceMonitor.monitoring.coreos.com nornos/app: not applied: the API server does not serve "
                     "ServiceMonitor (monitoring.coreos.com/v1) yet after 1 s")
    assert not [r for r in kube.state.requests if r.method == "PATCH" and "servicemonitors" in r.path]


# -- Pod Security admission -----------------------------------------------------------------------------
def privileged_root() -> dict[str, Any]:
    dep = deployment()
    pod = dep["spec"]["template"]["spec"]
    pod["securityContext"] = {}
    pod["containers"][0]["securityContext"] = {"privileged": True, "runAsUser": 0}
    return dep


def test_a_privileged_root_template_never_gets_a_pod_in_a_restricted_namespace(cluster: Cluster) -> None:
    report = apply(cluster, privileged_root(), rollout_timeout=0.2)
    assert [a for _, a in report.actions] == ["created", "created"]  # accepted, as a real API server does
    result, = report.rollouts
    assert result.state == "timeout"
    assert result.message.startswith("not rolled out within 0.2 s: 0 out of 1 new replicas have been updated "
                                     "(ReplicaFailure: pods \"app-")
    assert 'violates PodSecurity "restricted:latest": privileged' in result.message
    assert "runAsNonRoot != true" in result.message


def test_the_cluster_default_is_restricted_and_kube_system_is_exempt(kube: FakeKube, cluster: Cluster) -> None:
    unlabelled = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tools"}}
    in_tools = privileged_root()
    in_tools["metadata"]["namespace"] = "tools"
    report = apply_objects(cluster, [unlabelled, in_tools], "dev", timing=fast(0.1), prune=False)
    assert [r.state for r in report.rollouts] == ["timeout"]
    in_system = privileged_root()
    in_system["metadata"]["namespace"] = "kube-system"
    report = apply_objects(cluster, [in_system], "dev", timing=fast(), prune=False)
    assert [r.state for r in report.rollouts] == ["ready"]


def test_a_namespace_that_enforces_privileged_runs_it(cluster: Cluster) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring", "labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}}
    dep = privileged_root()
    dep["metadata"]["namespace"] = "monitoring"
    report = apply_objects(cluster, [ns, dep], "dev", timing=fast(), prune=False)
    assert [r.state for r in report.rollouts] == ["ready"]


# -- rollouts that take their time --------------------------------------------------------------------------
def test_a_lagging_rollout_is_waited_for_through_every_stage(kube: FakeKube, cluster: Cluster) -> None:
    kube.state.rollout_script["app"] = lagging(generation_lag=2, updating=2, unavailable=1)
    report = apply(cluster, deployment(replicas=2))
    result, = report.rollouts
    assert result.state == "ready" and result.message == "successfully rolled out (2 available)"
    assert kube.state.deployment_gets["app"] == 6  # it looked until the last stage, not once


def test_rollout_messages_follow_kubectl(kube: FakeKube, cluster: Cluster) -> None:
    kube.state.rollout_script["app"] = lagging(generation_lag=1, updating=1, unavailable=1)
    apply(cluster, deployment(replicas=2))
    kube.state.deployment_gets["app"] = 0  # the same rollout again, looked at one status at a time
    dep = deployment(replicas=2)
    seen = []
    for _ in range(4):
        live = cluster.get(dep)
        assert live is not None
        status = deployment_status(live)
        seen.append((status.done, status.message))
    assert seen == [(False, "waiting for deployment app spec update to be observed"),
                    (False, "1 out of 2 new replicas have been updated"),
                    (False, "1 of 2 updated replicas are available"),
                    (True, "successfully rolled out (2 available)")]


def test_a_rollout_that_never_finishes_times_out_with_its_last_status(kube: FakeKube, cluster: Cluster) -> None:
    kube.state.rollout_script["app"] = lagging(generation_lag=1000)
    assert apply(cluster, deployment(), rollout_timeout=0.1).rollouts[0].message == (
        "not rolled out within 0.1 s: waiting for deployment app spec update to be observed")
    results = wait_rollouts(cluster, [deployment()], fast(0.1))
    assert [(r.ref, r.state) for r in results] == [(ObjRef("apps", "Deployment", "nornos", "app"), "timeout")]


@pytest.mark.parametrize("meta, spec, status, done, message", [
    # a stale status that looks complete: only observedGeneration tells
    ({"generation": 3}, {"replicas": 2}, {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                                          "availableReplicas": 2}, False,
     "waiting for deployment d spec update to be observed"),
    # scaling up: the new ReplicaSet has fewer than wanted, no old ones left
    ({"generation": 1}, {"replicas": 3}, {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                                          "availableReplicas": 2}, False, "2 out of 3 new replicas have been updated"),
    ({"generation": 1}, {"replicas": 2}, {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 2,
                                          "availableReplicas": 3}, False, "1 old replicas are pending termination"),
    ({"generation": 1}, {"replicas": 2}, {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                                          "availableReplicas": 1}, False, "1 of 2 updated replicas are available"),
    ({"generation": 2}, {}, {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
     True, "successfully rolled out (1 available)"),
])
def test_deployment_status_rules(meta: dict[str, Any], spec: dict[str, Any], status: dict[str, Any], done: bool,
                                 message: str) -> None:
    result = deployment_status({"metadata": {"name": "d", **meta}, "spec": spec, "status": status})
    assert (result.done, result.failed, result.message) == (done, False, message)
