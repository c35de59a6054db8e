"""Rollout waiting and status at their edges, on a clock the test drives: a Deployment that is gone,
the seconds a ready rollout reports, a Deployment scaled to zero, why pods are not coming (a
ReplicaFailure condition, with or without a message), and a custom kind whose name another API
group also serves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nornos_infra.kube.apply import Timing, apply_objects, wait_rollouts
from nornos_infra.kube.cluster import Cluster
from nornos_infra.kube.model import ObjRef
from nornos_infra.kube.rollout import RolloutResult, RolloutStatus, deployment_status
from tests.unit.fake_kube import FakeKube


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


@pytest.fixture
def cluster(kube: FakeKube) -> Iterator[Cluster]:
    c = Cluster(kube.api_client())
    yield c
    c.close()


def dep(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "nornos"},
            "spec": {"replicas": 1, "template": {}}}


def test_a_deployment_that_is_gone_times_out_saying_so(cluster: Cluster) -> None:
    clock = Clock()
    timing = Timing(rollout_timeout=3, poll=1, sleep=clock.sleep, clock=clock)
    result, = wait_rollouts(cluster, [dep("vanished")], timing)
    assert result == RolloutResult(ObjRef("apps", "Deployment", "nornos", "vanished"), "timeout",
                                   "not rolled out within 3 s: deployment not found", 3.0)


def test_a_ready_rollout_reports_the_seconds_it_took(kube: FakeKube, cluster: Cluster) -> None:
    kube.seed({**dep("app"), "status": {}}, "apps", "deployments")
    kube.state.rollout_script["app"] = [lambda gen, n: {"observedGeneration": gen, "replicas": n},
                                        lambda gen, n: {"observedGeneration": gen, "replicas": n,
                                                        "updatedReplicas": n, "availableReplicas": n}]
    clock = Clock()
    timing = Timing(rollout_timeout=30, poll=2, sleep=clock.sleep, clock=clock)
    result, = wait_rollouts(cluster, [dep("app")], timing)
    assert (result.state, result.message, result.seconds) == ("ready", "successfully rolled out (1 available)", 2.0)


def test_a_deployment_scaled_to_zero_is_rolled_out() -> None:
    status = deployment_status({"metadata": {"name": "d", "generation": 1}, "spec": {"replicas": 0},
                                "status": {"observedGeneration": 1}})
    assert status == RolloutStatus(True, False, "successfully rolled out (0 available)")


def short(*conditions: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "d", "generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 0,
                       "conditions": list(conditions)}}


def test_why_pods_are_not_coming_is_said_only_for_a_true_replica_failure() -> None:
    failing = {"type": "ReplicaFailure", "status": "True", "message": "pods are forbidden: violates PodSecurity"}
    assert deployment_status(short(failing)).message == (
        "0 of 2 updated replicas are available (ReplicaFailure: pods are forbidden: violates PodSecurity)")
    assert deployment_status(short({"type": "ReplicaFailure", "status": "True"})).message == (
        "0 of 2 updated replicas are available (ReplicaFailure: )")
    for other in ({"type": "Available", "status": "True", "message": "x"},
                  {"type": "ReplicaFailure", "status": "False", "message": "x"}):
        assert deployment_status(short(other)).message == "0 of 2 updated replicas are available"


def test_a_custom_kind_is_found_in_its_own_api_group(kube: FakeKube, cluster: Cluster) -> None:
    kube.add_kind("other.example.org", "v1", "widgets", "Widget", True)  # the same kind name, another group
    kube.add_kind("example.org", "v1", "widgets", "Widget", True)
    widget = {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "nornos"}}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nornos"}}
    report = apply_objects(cluster, [ns, widget], "dev", timing=Timing(crd_timeout=1, poll=0.01), prune=False)
    assert report.ok, report.lines()
    assert [r.path for r in kube.state.requests if r.method == "PATCH"][-1] == \
        "/apis/example.org/v1/namespaces/nornos/widgets/w"
