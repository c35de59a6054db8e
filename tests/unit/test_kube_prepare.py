"""What ``prepare`` refuses before anything reaches a cluster (a Secret the manifests need but
nothing generates, a generated Secret the API would refuse), and Cluster.delete as prune uses it
(and as a dry run would): the request it sends and what it does when the object is already gone."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nornos_infra.errors import UserError
from nornos_infra.kube import environment, generated, validate
from nornos_infra.kube.cluster import Cluster
from nornos_infra.kube.generated import Endpoints, referenced_secrets
from nornos_infra.kube.render import MANIFESTS
from tests.unit.fake_kube import FakeKube

VALUES = {key: f"s3cr3t-{key}" for key in generated.required_keys()}
ENDPOINTS = Endpoints(postgres_host="10.0.1.5", redis_host="10.0.1.6")

EXTRA_SECRET_PATCH = """
  # a credential added to patient-app that nornos_infra/kube/generated.py does not make
  - target: {kind: Deployment, name: patient-app}
    patch: |-
      - op: add
        path: /spec/template/spec/containers/0/env/-
        value: {name: PARTNER_TOKEN, valueFrom: {secretKeyRef: {name: partner-api, key: token}}}
"""


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    return copy


def test_prepare_returns_the_rendered_objects_then_the_generated_secrets(manifests: Path) -> None:
    objs = environment.prepare("dev", VALUES, ENDPOINTS, manifests)
    secrets = generated.generated_secrets("dev", VALUES, ENDPOINTS)
    assert objs[-len(secrets):] == secrets
    assert not any(o["kind"] == "Secret" for o in objs[:-len(secrets)])


def test_a_secret_referenced_but_not_generated_is_refused_by_name(manifests: Path) -> None:
    kustomization = manifests / "overlays" / "dev" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("patches:\n", "patches:" + EXTRA_SECRET_PATCH, 1))
    with pytest.raises(UserError) as err:
        environment.prepare("dev", VALUES, ENDPOINTS, manifests)
    assert str(err.value) == ("manifests reference Secrets that are not generated: nornos/partner-api; "
                              "add them to nornos_infra/kube/generated.py")


def test_two_missing_secrets_are_listed_in_order(manifests: Path) -> None:
    kustomization = manifests / "overlays" / "dev" / "kustomization.yaml"
    second = EXTRA_SECRET_PATCH.replace("patient-app", "doctor-app").replace("partner-api", "analytics-api")
    kustomization.write_text(kustomization.read_text().replace("patches:\n", "patches:" + EXTRA_SECRET_PATCH
                                                               + second, 1))
    with pytest.raises(UserError, match=r"not generated: nornos/analytics-api, nornos/partner-api; add them"):
        environment.prepare("dev", VALUES, ENDPOINTS, manifests)


def test_a_generated_secret_the_api_would_refuse_stops_before_any_request(
        manifests: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = environment.generated_secrets

    def with_a_bad_one(env: str, values: Any, endpoints: Endpoints) -> list[dict[str, Any]]:
        out = real(env, values, endpoints)
        out[0]["data"]["token"] = 12345  # data values are base64 strings
        return out

    monkeypatch.setattr(environment, "generated_secrets", with_a_bad_one)
    with pytest.raises(validate.ManifestError) as err:
        environment.prepare("dev", VALUES, ENDPOINTS, manifests)
    assert err.value.problems and all(p.startswith("Secret kube-system/hcloud: data/token: ")
                                      for p in err.value.problems)
    assert str(err.value).startswith("1 manifest problem(s): Secret kube-system/hcloud: data/token: ")


def test_secrets_named_by_an_object_without_a_namespace_are_in_the_empty_namespace() -> None:
    pod = {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "env-secret"}}]}],
           "volumes": [{"name": "v", "secret": {"secretName": "vol-secret"}}]}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"template": {"spec": pod}}}
    assert referenced_secrets([deployment]) == {("", "env-secret"), ("", "vol-secret")}


def test_every_generated_secret_says_what_it_is_for() -> None:
    purposes = {(s["metadata"]["namespace"], s["metadata"]["name"]): s["metadata"]["annotations"]["nornos.io/purpose"]
                for s in generated.generated_secrets("dev", VALUES, ENDPOINTS)}
    assert purposes[("kube-system", "hcloud")] == (
        "Hetzner Cloud token and private network for the cloud controller and the CSI driver")
    assert purposes[("kube-system", "encryption-secret")] == "LUKS passphrase of StorageClass hcloud-volumes-encrypted"
    assert purposes[("nornos", "patient-app-db")] == "PostgreSQL connection of patient-app"


# --- Cluster.delete -------------------------------------------------------------------------------------

@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


@pytest.fixture
def cluster(kube: FakeKube) -> Iterator[Cluster]:
    c = Cluster(kube.api_client())
    yield c
    c.close()


CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": "nornos"}}


def deletes(kube: FakeKube) -> list[tuple[str, str | None, str | None]]:
    return [(r.path, r.param("propagationPolicy"), r.param("dryRun")) for r in kube.state.requests
            if r.method == "DELETE"]


def test_delete_removes_the_object_with_foreground_propagation(kube: FakeKube, cluster: Cluster) -> None:
    kube.seed(CM, "", "configmaps")
    cluster.delete(CM)
    assert deletes(kube) == [("/api/v1/namespaces/nornos/configmaps/old", "Foreground", None)]
    assert ("", "configmaps", "nornos", "old") not in kube.state.objects


def test_a_dry_run_delete_only_asks(kube: FakeKube, cluster: Cluster) -> None:
    kube.seed(CM, "", "configmaps")
    cluster.delete(CM, dry_run=True)
    assert deletes(kube) == [("/api/v1/namespaces/nornos/configmaps/old", "Foreground", "All")]
    assert ("", "configmaps", "nornos", "old") in kube.state.objects


def test_deleting_what_is_already_gone_is_quiet(kube: FakeKube, cluster: Cluster) -> None:
    cluster.delete(CM)
    assert deletes(kube) == [("/api/v1/namespaces/nornos/configmaps/old", "Foreground", None)]


def test_delete_finds_the_kind_in_its_own_api_group(kube: FakeKube, cluster: Cluster) -> None:
    kube.add_kind("example.org", "v1", "configmaps", "ConfigMap", True)  # another group's ConfigMap
    kube.seed(CM, "", "configmaps")
    cluster.delete(CM)
    assert deletes(kube) == [("/api/v1/namespaces/nornos/configmaps/old", "Foreground", None)]


def test_a_cluster_scoped_object_is_deleted_without_a_namespace(kube: FakeKube, cluster: Cluster) -> None:
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}}
    kube.seed(sc, "storage.k8s.io", "storageclasses")
    # a stray namespace in the metadata (as some tools write it) must not end up in the path
    cluster.delete({**sc, "metadata": {"name": "fast", "namespace": "nornos"}})
    assert deletes(kube) == [("/apis/storage.k8s.io/v1/storageclasses/fast", "Foreground", None)]
    assert ("storage.k8s.io", "storageclasses", "", "fast") not in kube.state.objects


def test_apply_environment_applies_by_default_and_renders_the_manifests_given(
        kube: FakeKube, manifests: Path) -> None:
    from nornos_infra.kube.apply import Timing
    from nornos_infra.kube.environment import apply_environment

    timing = Timing(rollout_timeout=5, crd_timeout=5, poll=0.02)
    report = apply_environment("dev", None, VALUES, ENDPOINTS, api_client=kube.api_client(), timing=timing,
                               manifests=manifests)
    assert report.ok and not report.dry_run, report.lines()
    assert ("", "namespaces", "", "nornos") in kube.state.objects  # applied, not a dry run
    kustomization = manifests / "overlays" / "dev" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text().replace("patches:\n", "patches:" + EXTRA_SECRET_PATCH, 1))
    with pytest.raises(UserError, match="not generated: nornos/partner-api"):
        apply_environment("dev", None, VALUES, ENDPOINTS, api_client=kube.api_client(), timing=timing,
                          manifests=manifests)
