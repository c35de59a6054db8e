"""CRDs the manifests themselves ship: each must be Established before any object of its kind is
applied, for at most ``crd_timeout`` seconds, polling every ``poll``; what is still not Established
then is named in one error and nothing after it is applied, pruned or waited for. Time is a clock
the test drives (each poll advances it), so the number of looks is exact."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nornos_infra.kube.apply import Timing, apply_objects
from nornos_infra.kube.cluster import Cluster
from tests.unit.fake_kube import FakeKube

NEVER = 10**9
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nornos"}}


def crd(plural: str, kind: str) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.example.org"},
            "spec": {"group": "example.org", "scope": "Namespaced", "names": {"plural": plural, "kind": kind},
                     "versions": [{"name": "v1", "served": True, "storage": True}]}}


WIDGETS, GADGETS = crd("widgets", "Widget"), crd("gadgets", "Gadget")
WIDGET = {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "nornos"}}
LEFTOVER = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": "nornos", "labels": {
    "app.kubernetes.io/managed-by": "nornos-infra", "nornos.io/env": "dev"}}}


class Clock:
    """Seconds that pass only when the apply step sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        fake.seed(LEFTOVER, "", "configmaps")
        yield fake


def run(kube: FakeKube, *objs: dict[str, Any], crd_timeout: float = 2.0, dry_run: bool = False) -> Any:
    clock = Clock()
    timing = Timing(rollout_timeout=5, crd_timeout=crd_timeout, poll=0.5, sleep=clock.sleep, clock=clock)
    cluster = Cluster(kube.api_client())
    try:
        return apply_objects(cluster, list(objs), "dev", dry_run=dry_run, timing=timing), clock
    finally:
        cluster.close()


def crd_looks(kube: FakeKube, name: str) -> int:
    """GETs of the CRD after it was applied (the one before the apply only asks whether it exists)."""
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    requests = kube.state.requests
    applied = max(i for i, r in enumerate(requests) if r.method == "PATCH" and r.path == path)
    return sum(1 for r in requests[applied:] if r.method == "GET" and r.path == path)


def patched(kube: FakeKube) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in kube.state.requests if r.method == "PATCH"]


def test_objects_wait_until_their_crd_is_established(kube: FakeKube) -> None:
    kube.state.crd_established_after = 3  # Established on the fourth look
    report, clock = run(kube, WIDGET, WIDGETS, NS)
    assert report.ok, report.lines()
    assert patched(kube) == ["nornos", "widgets.example.org", "w"]
    assert clock.sleeps == [0.5, 0.5, 0.5]
    assert [r.name for r in report.pruned] == ["old"]  # the apply completed: prune ran


def test_a_crd_never_established_is_named_and_stops_everything_after_it(kube: FakeKube) -> None:
    kube.state.crd_established_after = NEVER
    report, clock = run(kube, WIDGET, WIDGETS, NS)
    assert report.errors == ["CRD(s) widgets.example.org not Established after 2 s; their objects were not applied"]
    assert not report.ok
    assert patched(kube) == ["nornos", "widgets.example.org"]
    # looked at 0, 0.5, 1, 1.5 and 2 s; the 2 s are up at the fifth look
    assert crd_looks(kube, "widgets.example.org") == 5 and clock.sleeps == [0.5] * 4
    assert report.pruned == [] and not [r for r in kube.state.requests if r.method == "DELETE"]
    assert "note: prune and rollout wait skipped: the apply did not complete" in report.lines()


def test_only_the_crds_still_pending_are_named(kube: FakeKube) -> None:
    kube.state.crd_established_after = 0  # Established at the first look...
    kube.state.crd_gets["widgets.example.org"] = -NEVER  # ...except this one, never
    report, _ = run(kube, WIDGET, WIDGETS, GADGETS, NS, crd_timeout=1.0)
    assert report.errors == ["CRD(s) widgets.example.org not Established after 1 s; their objects were not applied"]
    # an Established CRD is not looked at again
    assert crd_looks(kube, "gadgets.example.org") == 1
    assert crd_looks(kube, "widgets.example.org") == 3

    kube.state.crd_established_after = NEVER
    kube.state.crd_gets.clear()
    kube.state.requests.clear()
    report, _ = run(kube, WIDGET, WIDGETS, GADGETS, NS, crd_timeout=1.0)
    assert report.errors == ["CRD(s) gadgets.example.org, widgets.example.org not Established after 1 s; "
                             "their objects were not applied"]


def test_a_crd_applied_last_is_still_waited_for(kube: FakeKube) -> None:
    kube.state.crd_established_after = 2
    report, clock = run(kube, WIDGETS, NS)
    assert report.ok, report.lines()
    assert crd_looks(kube, "widgets.example.org") == 3 and clock.sleeps == [0.5, 0.5]
    assert [r.name for r in report.pruned] == ["old"]

    kube.seed(LEFTOVER, "", "configmaps")
    kube.state.crd_established_after = NEVER
    kube.state.crd_gets.clear()
    report, _ = run(kube, WIDGETS, NS, crd_timeout=0.5)
    assert report.errors == ["CRD(s) widgets.example.org not Established after 0.5 s; their objects were not applied"]
    assert report.pruned == [] and "old" in {k[3] for k in kube.state.objects}


def test_a_dry_run_never_waits_for_a_crd(kube: FakeKube) -> None:
    kube.state.crd_established_after = NEVER
    report, clock = run(kube, WIDGET, WIDGETS, NS, dry_run=True)
    assert report.ok, report.lines()
    assert clock.sleeps == []
    actions = {str(ref): action for ref, action in report.actions}
    assert actions == {"Namespace nornos": "created", "CustomResourceDefinition.apiextensions.k8s.io "
                       "widgets.example.org": "created", "Widget.example.org nornos/w": "pending"}
    assert [r.name for r in report.pruned] == ["old"] and "old" in {k[3] for k in kube.state.objects}
    assert report.notes == ["Widget.example.org nornos/w: its kind is not served yet (CRD from a chart still to "
                            "install); it will be created once the CRD is Established"]


def test_a_kind_whose_crd_a_chart_installed_waits_until_established_then_says_why_not(kube: FakeKube) -> None:
    kube.add_kind("example.org", "v1", "widgets", "Widget", True)  # served: its CRD exists...
    kube.seed(WIDGETS, "apiextensions.k8s.io", "customresourcedefinitions")
    kube.state.crd_established_after = NEVER  # ...but is never Established
    report, clock = run(kube, NS, WIDGET)
    assert report.errors == ["Widget.example.org nornos/w: not applied: CRD widgets.example.org is not Established "
                             "yet after 2 s"]
    assert clock.sleeps == [0.5] * 4  # looked at 0, 0.5, 1, 1.5 and 2 s
    assert "w" not in patched(kube)
