"""Secrets generated at apply time from the decrypted SOPS values: never written under manifests/.

The caller (deploys/manifests.py, the CLI) decrypts secrets/<env>.sops.yaml and passes the values
as a flat mapping; this module only shapes them into Secret objects. Keys it reads:

- ``hcloud_token``: API token for the cloud controller and the CSI driver (Secret kube-system/hcloud,
  with the private network's name, ``nornos-<env>``)
- ``csi_encryption_passphrase``: LUKS passphrase for the encrypted StorageClass
  (Secret kube-system/encryption-secret)
- ``db_password_<app>`` (app with underscores, e.g. ``db_password_patient_app``): the app's own
  PostgreSQL role; user and database are both named ``<app>`` with underscores
- ``redis_password``: the password of Redis's ACL user ``nornos_app`` (the default user is off);
  each app gets its own logical database number
- ``object_storage_access_key``, ``object_storage_secret_key``: S3 keys for shared-data-server
- ``grafana_admin_password``: Grafana's admin (Secret monitoring/grafana-admin)
- ``slack_webhook_url`` (may be empty: alerts then reach no one, and the Secret says so):
  Alertmanager's Slack receiver (Secret monitoring/alertmanager-nornos)

Not secret, but generated here as well, from the inventory: the scrape jobs of the hosts'
exporters (Secret monitoring/nornos-scrape-configs, the chart's additionalScrapeConfigsSecret).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import yaml

from nornos_infra.errors import UserError
from nornos_infra.kube.model import Obj
from nornos_infra.monitoring import alerting, scrape
from nornos_infra.monitoring.scrape import Monitored
from nornos_infra.vocabulary import DB_APPS

APP_NAMESPACE = "nornos"
MONITORING_NAMESPACE = "monitoring"
# Redis logical databases: one per app, so keys never collide.
REDIS_APPS = {"patient-app": 0, "doctor-app": 1, "agent-service": 2, "relay-server": 3, "auth-service": 4}
OBJECT_STORAGE_APPS = ("shared-data-server",)
REDIS_USER = "nornos_app"  # the ACL user the redis role creates (nornos_infra/roles/redis.py)


@dataclass(frozen=True)
class Endpoints:
    """Where the data services are: private addresses from the inventory, nothing secret."""

    postgres_host: str
    redis_host: str
    object_storage_endpoint: str = "https://fsn1.your-objectstorage.com"
    postgres_sslmode: str = "require"
    monitored: tuple[Monitored, ...] = ()  # every host, for Prometheus's scrape jobs


def db_key(app: str) -> str:
    return "db_password_" + app.replace("-", "_")


def required_keys() -> list[str]:
    return ["hcloud_token", "csi_encryption_passphrase", "redis_password", "object_storage_access_key",
            "object_storage_secret_key", "grafana_admin_password", *(db_key(a) for a in DB_APPS)]


def _secret(name: str, namespace: str, data: Mapping[str, str], purpose: str) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"nornos.io/generated": "true"},
                     "annotations": {"nornos.io/purpose": purpose}},
        # data (base64), not stringData: stringData is write-only, so a diff could never show it unchanged
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())},
    }


def generated_secrets(env: str, values: Mapping[str, str], endpoints: Endpoints) -> list[Obj]:
    """The Secret objects for ``env``; raises UserError naming every missing key (never a value)."""
    missing = [k for k in required_keys() if not values.get(k)]
    if missing:
        raise UserError(f"secrets/{env}.sops.yaml lacks {', '.join(missing)}; "
                        f"add them with `sops secrets/{env}.sops.yaml`")
    out = [
        _secret("hcloud", "kube-system", {"token": values["hcloud_token"], "network": f"nornos-{env}"},
                "Hetzner Cloud token and private network for the cloud controller and the CSI driver"),
        _secret("encryption-secret", "kube-system", {"encryption-passphrase": values["csi_encryption_passphrase"]},
                "LUKS passphrase of StorageClass hcloud-volumes-encrypted"),
    ]
    for app in DB_APPS:
        user = app.replace("-", "_")
        url = (f"postgresql://{user}:{quote(values[db_key(app)], safe='')}@{endpoints.postgres_host}:5432/{user}"
               f"?sslmode={endpoints.postgres_sslmode}")
        out.append(_secret(f"{app}-db", APP_NAMESPACE, {"database-url": url}, f"PostgreSQL connection of {app}"))
    for app, index in REDIS_APPS.items():
        url = (f"redis://{REDIS_USER}:{quote(values['redis_password'], safe='')}@{endpoints.redis_host}:6379/"
               f"{index}")
        out.append(_secret(f"{app}-redis", APP_NAMESPACE, {"redis-url": url}, f"Redis connection of {app}"))
    for app in OBJECT_STORAGE_APPS:
        out.append(_secret(f"{app}-object-storage", APP_NAMESPACE, {
            "endpoint": endpoints.object_storage_endpoint,
            "bucket": f"nornos-{env}-{app}",
            "access-key-id": values["object_storage_access_key"],
            "secret-access-key": values["object_storage_secret_key"],
        }, f"Hetzner Object Storage (S3) access of {app}"))
    return out + monitoring_secrets(env, values, endpoints)


def monitoring_secrets(env: str, values: Mapping[str, str], endpoints: Endpoints) -> list[Obj]:
    """Grafana's admin, Alertmanager's configuration (Slack), the scrape jobs of the hosts' exporters."""
    webhook = values.get("slack_webhook_url") or ""
    routed = ("alerts go to Slack (slack_webhook_url)" if webhook else
              "NO slack_webhook_url in the secrets: alerts reach no one; set it with invoke secrets.edit")
    return [
        _secret("grafana-admin", MONITORING_NAMESPACE, {"admin-user": "admin",
                                                         "admin-password": values["grafana_admin_password"]},
                "Grafana's admin user (grafana_admin_password)"),
        _secret("alertmanager-nornos", MONITORING_NAMESPACE,
                {"alertmanager.yaml": yaml.safe_dump(alerting.alertmanager_config(env, webhook), sort_keys=False)},
                f"Alertmanager's configuration: {routed}"),
        _secret("nornos-scrape-configs", MONITORING_NAMESPACE,
                {"scrape-configs.yaml": yaml.safe_dump(scrape.scrape_configs(env, list(endpoints.monitored)),
                                                       sort_keys=False)},
                "Prometheus's scrape jobs for the hosts' exporters, from the inventory"),
    ]


def referenced_secrets(objs: list[Obj]) -> set[tuple[str, str]]:
    """(namespace, name) of every Secret the rendered objects need: pod volumes, env, StorageClass parameters."""
    out: set[tuple[str, str]] = set()
    for obj in objs:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == "StorageClass":
            params = obj.get("parameters") or {}
            name = params.get("csi.storage.k8s.io/node-publish-secret-name")
            if name:
                out.add((params.get("csi.storage.k8s.io/node-publish-secret-namespace", ""), name))
        if obj.get("kind") != "Deployment":
            continue
        ns = meta.get("namespace", "")
        pod = obj["spec"]["template"]["spec"]
        for vol in pod.get("volumes") or []:
            if "secret" in vol:
                out.add((ns, vol["secret"]["secretName"]))
            for src in (vol.get("projected") or {}).get("sources") or []:
                if "secret" in src:
                    out.add((ns, src["secret"]["name"]))
        for c in pod.get("containers") or []:
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    out.add((ns, ref["name"]))
            for e in c.get("envFrom") or []:
                if "secretRef" in e:
                    out.add((ns, e["secretRef"]["name"]))
    return out
