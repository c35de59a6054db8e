"""Prune against the fake Kubernetes API in the cases a real cluster has: a kind the API server does
not serve (no CRD, or not k3s), the same kind name served by two API groups, a delete the API
refuses. Only objects labelled as ours and no longer rendered go, and a refusal is reported."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nornos_infra.kube.apply import Timing, apply_objects
from nornos_infra.kube.cluster import Cluster
from tests.unit.fake_kube import FakeKube

OURS = {"app.kubernetes.io/managed-by": "nornos-infra", "nornos.io/env": "dev"}
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nornos"}}


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


def run(kube: FakeKube, dry_run: bool = False) -> Any:
    cluster = Cluster(kube.api_client())
    try:
        return apply_objects(cluster, [NS], "dev", dry_run=dry_run, timing=Timing(poll=0.01), wait=False)
    finally:
        cluster.close()


def leftover(kind: str, name: str, api_version: str = "v1", **extra: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "nornos", "labels": OURS},
            **extra}


def test_a_kind_that_is_not_served_is_skipped_and_the_rest_still_pruned(kube: FakeKube) -> None:
    kube.state.resources = [r for r in kube.state.resources if r[3] != "DaemonSet"]  # not served here
    kube.seed(leftover("ConfigMap", "before"), "", "configmaps")
    kube.seed(leftover("NetworkPolicy", "after", "networking.k8s.io/v1", spec={}), "networking.k8s.io",
              "networkpolicies")
    report = run(kube)
    assert report.ok, report.lines()
    assert sorted(str(r) for r in report.pruned) == ["ConfigMap nornos/before",
                                                      "NetworkPolicy.networking.k8s.io nornos/after"]
    assert not any(k[3] in ("before", "after") for k in kube.state.objects)


def test_prune_lists_each_kind_in_its_own_api_group(kube: FakeKube) -> None:
    kube.add_kind("example.org", "v1", "configmaps", "ConfigMap", True)  # a CRD with a clashing kind name
    kube.seed(leftover("ConfigMap", "old"), "", "configmaps")
    report = run(kube)
    assert [str(r) for r in report.pruned] == ["ConfigMap nornos/old"]
    lists = {r.path for r in kube.state.requests if r.method == "GET" and r.param("labelSelector")}
    assert "/api/v1/configmaps" in lists and not any("example.org" in p for p in lists)


def test_a_refused_delete_is_reported_and_the_others_still_go(kube: FakeKube) -> None:
    kube.seed(leftover("ConfigMap", "a-locked"), "", "configmaps")
    kube.seed(leftover("ConfigMap", "b-free"), "", "configmaps")
    kube.state.forbid_delete = {"a-locked"}
    report = run(kube)
    assert report.errors == ['ConfigMap nornos/a-locked: prune failed: 403 configmaps "a-locked" is forbidden: '
                             "User cannot delete resource"]
    assert [str(r) for r in report.pruned] == ["ConfigMap nornos/b-free"]
    assert not report.ok and report.lines()[-1].endswith("; FAILED")
    assert ("", "configmaps", "nornos", "a-locked") in kube.state.objects


def test_a_dry_run_shows_what_prune_would_delete_and_deletes_nothing(kube: FakeKube) -> None:
    kube.seed(leftover("ConfigMap", "old", data={"k": "v"}), "", "configmaps")
    report = run(kube, dry_run=True)
    assert [str(r) for r in report.pruned] == ["ConfigMap nornos/old"]
    assert "--- live/core.ConfigMap.nornos.old\n" in report.diff and "-  k: v\n" in report.diff
    # the API lists items without apiVersion and kind: the diff still names them
    assert "-apiVersion: v1\n" in report.diff and "-kind: ConfigMap\n" in report.diff
    assert ("", "configmaps", "nornos", "old") in kube.state.objects
    assert not [r for r in kube.state.requests if r.method == "DELETE"]
