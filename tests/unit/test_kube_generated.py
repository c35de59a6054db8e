"""The Secrets made at apply time (nornos_infra/kube/generated.py), value by value, and the Secret
references found in rendered objects. Found by the mutation score (scripts/mutation_score.py):
the manifest test only checked that every reference has a Secret, so a wrong URL, a wrong Redis
database or a reference read from the wrong place went unnoticed."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from nornos_infra.errors import UserError
from nornos_infra.kube import generated
from nornos_infra.kube.generated import Endpoints, generated_secrets, referenced_secrets
from nornos_infra.monitoring.scrape import Monitored

VALUES = {
    "hcloud_token": "tok-123",
    "csi_encryption_passphrase": "luks pass",
    "redis_password": "r/p@ss:w?rd",
    "object_storage_access_key": "AK",
    "object_storage_secret_key": "SK",
    "grafana_admin_password": "graf-pw",
    "slack_webhook_url": "https://hooks.slack.com/services/T0/B0/xyz",
    **{generated.db_key(app): f"pw-{app}" for app in generated.DB_APPS},
}
VALUES[generated.db_key("patient-app")] = "p@ss/w:rd?#%"


def by_name(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, str]]:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]):
            {k: base64.b64decode(v).decode() for k, v in o["data"].items()} for o in objs}


def test_every_secret_and_its_values() -> None:
    objs = generated_secrets("staging", VALUES, Endpoints("10.1.1.5", "10.1.1.6"))
    got = by_name(objs)
    assert got[("kube-system", "hcloud")] == {"token": "tok-123", "network": "nornos-staging"}
    assert got[("kube-system", "encryption-secret")] == {"encryption-passphrase": "luks pass"}
    assert got[("nornos", "patient-app-db")] == {
        "database-url": "postgresql://patient_app:p%40ss%2Fw%3Ard%3F%23%25@10.1.1.5:5432/patient_app?sslmode=require"}
    assert got[("nornos", "auth-service-db")] == {
        "database-url": "postgresql://auth_service:pw-auth-service@10.1.1.5:5432/auth_service?sslmode=require"}
    redis = {name: v["redis-url"] for (_, name), v in got.items() if name.endswith("-redis")}
    assert redis == {f"{app}-redis": f"redis://nornos_app:r%2Fp%40ss%3Aw%3Frd@10.1.1.6:6379/{index}"
                     for app, index in {"patient-app": 0, "doctor-app": 1, "agent-service": 2, "relay-server": 3,
                                        "auth-service": 4}.items()}
    assert got[("nornos", "shared-data-server-object-storage")] == {
        "endpoint": "https://fsn1.your-objectstorage.com", "bucket": "nornos-staging-shared-data-server",
        "access-key-id": "AK", "secret-access-key": "SK"}
    assert len(objs) == len(got) == 2 + 5 + 5 + 1 + 3
    for o in objs:
        assert (o["apiVersion"], o["kind"], o["type"]) == ("v1", "Secret", "Opaque")
        assert o["metadata"]["labels"] == {"nornos.io/generated": "true"}
        assert o["metadata"]["annotations"]["nornos.io/purpose"]
        assert list(o["data"]) == sorted(o["data"])
    assert by_name(generated_secrets("dev", VALUES, Endpoints("10.0.1.5", "10.0.1.6", "https://s3.example",
                                                              "verify-full")))[("nornos", "doctor-app-db")] == {
        "database-url": "postgresql://doctor_app:pw-doctor-app@10.0.1.5:5432/doctor_app?sslmode=verify-full"}


def test_missing_keys_are_all_named_and_no_value_is() -> None:
    values = {k: v for k, v in VALUES.items() if k not in ("redis_password", "db_password_doctor_app")}
    values["hcloud_token"] = ""
    with pytest.raises(UserError) as err:
        generated_secrets("prod", values, Endpoints("a", "b"))
    assert str(err.value) == ("secrets/prod.sops.yaml lacks hcloud_token, redis_password, db_password_doctor_app; "
                              "add them with `sops secrets/prod.sops.yaml`")


def deployment(ns: str, pod: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Deployment", "metadata": {"namespace": ns, "name": "x"}, "spec": {"template": {"spec": pod}}}


def test_references_from_every_place_a_pod_names_a_secret() -> None:
    objs = [
        deployment("nornos", {
            "volumes": [{"name": "a", "secret": {"secretName": "vol-secret"}},
                        {"name": "b", "projected": {"sources": [{"secret": {"name": "projected-secret"}},
                                                                {"configMap": {"name": "not-a-secret"}}]}},
                        {"name": "c", "emptyDir": {}}],
            "containers": [
                {"name": "app", "env": [{"name": "A", "value": "plain"},
                                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-secret"}}},
                                        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
                 "envFrom": [{"secretRef": {"name": "envfrom-secret"}}, {"configMapRef": {"name": "cm"}}]},
                {"name": "sidecar", "env": [{"name": "D", "valueFrom": {"secretKeyRef": {"name": "sidecar-secret"}}}]},
            ]}),
        deployment("kube-system", {"containers": [{"name": "c"}]}),
        {"kind": "StorageClass", "metadata": {"name": "enc"},
         "parameters": {"csi.storage.k8s.io/node-publish-secret-name": "encryption-secret",
                        "csi.storage.k8s.io/node-publish-secret-namespace": "kube-system"}},
        {"kind": "StorageClass", "metadata": {"name": "no-ns"},
         "parameters": {"csi.storage.k8s.io/node-publish-secret-name": "bare"}},
        {"kind": "StorageClass", "metadata": {"name": "plain"}},
        {"kind": "StatefulSet", "metadata": {"namespace": "nornos"},
         "spec": {"template": {"spec": {"volumes": [{"secret": {"secretName": "not-counted"}}]}}}},
    ]
    assert referenced_secrets(objs) == {
        ("nornos", "vol-secret"), ("nornos", "projected-secret"), ("nornos", "env-secret"),
        ("nornos", "envfrom-secret"), ("nornos", "sidecar-secret"), ("kube-system", "encryption-secret"),
        ("", "bare"),
    }
    assert referenced_secrets([]) == set()


HOSTS = (Monitored("nornos-staging-redis-1", "redis", "10.1.1.6"),
         Monitored("nornos-staging-control-plane-1", "k3s_server", "10.1.1.2"),
         Monitored("nornos-staging-postgres-1", "postgres", "10.1.1.5"))


def test_the_monitoring_secrets() -> None:
    """Grafana's admin from the secrets; Alertmanager to Slack with the env's webhook; the scrape jobs
    of the hosts' exporters from the inventory, each target labelled with its host."""
    got = by_name(generated_secrets("staging", VALUES, Endpoints("10.1.1.5", "10.1.1.6", monitored=HOSTS)))
    assert got[("monitoring", "grafana-admin")] == {"admin-user": "admin", "admin-password": "graf-pw"}
    alertmanager = yaml.safe_load(got[("monitoring", "alertmanager-nornos")]["alertmanager.yaml"])
    assert alertmanager["route"]["receiver"] == "slack"
    assert alertmanager["receivers"][0]["slack_configs"][0]["api_url"] == VALUES["slack_webhook_url"]
    assert "nornos staging" in alertmanager["receivers"][0]["slack_configs"][0]["title"]
    jobs = yaml.safe_load(got[("monitoring", "nornos-scrape-configs")]["scrape-configs.yaml"])
    assert [(j["job_name"], [(c["targets"], c["labels"]["host"]) for c in j["static_configs"]]) for j in jobs] == [
        ("node", [(["10.1.1.2:9100"], "nornos-staging-control-plane-1"),
                  (["10.1.1.5:9100"], "nornos-staging-postgres-1"), (["10.1.1.6:9100"], "nornos-staging-redis-1")]),
        ("postgres", [(["10.1.1.5:9187"], "nornos-staging-postgres-1")]),
        ("redis", [(["10.1.1.6:9121"], "nornos-staging-redis-1")])]
    assert jobs[0]["static_configs"][1]["labels"] == {"host": "nornos-staging-postgres-1", "role": "postgres",
                                                       "env": "staging"}


def test_without_a_webhook_alerts_reach_no_one_and_the_secret_says_so() -> None:
    objs = generated_secrets("dev", {**VALUES, "slack_webhook_url": ""}, Endpoints("a", "b"))
    secret = next(o for o in objs if o["metadata"]["name"] == "alertmanager-nornos")
    assert "NO slack_webhook_url in the secrets: alerts reach no one" in secret["metadata"]["annotations"][
        "nornos.io/purpose"]
    config = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
    assert config["route"]["receiver"] == "nowhere" and config["receivers"] == [{"name": "nowhere"}]
