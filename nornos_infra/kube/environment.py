"""One call for deploys/manifests.py, invoke and the CLI: render, validate, add the generated
Secrets, then apply (or, with dry_run, diff) against the environment's cluster."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nornos_infra.errors import UserError
from nornos_infra.kube import validate
from nornos_infra.kube.apply import Timing, apply_objects
from nornos_infra.kube.cluster import Cluster
from nornos_infra.kube.generated import Endpoints, generated_secrets, referenced_secrets
from nornos_infra.kube.model import Obj
from nornos_infra.kube.render import MANIFESTS, render
from nornos_infra.kube.report import Report


def prepare(env: str, secret_values: Mapping[str, str], endpoints: Endpoints,
            manifests: Path = MANIFESTS) -> list[Obj]:
    """Rendered and validated objects plus the generated Secrets: exactly what apply sends."""
    objs = render(env, manifests)
    validate.check(objs)
    secrets = generated_secrets(env, secret_values, endpoints)
    have = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in secrets}
    missing = sorted(referenced_secrets(objs) - have)
    if missing:
        raise UserError("manifests reference Secrets that are not generated: "
                        + ", ".join(f"{ns}/{name}" for ns, name in missing)
                        + "; add them to nornos_infra/kube/generated.py")
    bad = validate.schema_problems(secrets)
    if bad:
        raise validate.ManifestError(bad)
    return objs + secrets


def apply_environment(env: str, kubeconfig: str | Path | None, secret_values: Mapping[str, str],
                      endpoints: Endpoints, dry_run: bool = False, *, manifests: Path = MANIFESTS,
                      timing: Timing | None = None, api_client: Any = None) -> Report:
    """Apply ``env``'s manifests (dry_run: print nothing, change nothing, return the diff in the Report).

    ``secret_values`` are the decrypted SOPS values (keys: nornos_infra.kube.generated), ``endpoints``
    the private addresses of PostgreSQL and Redis from the inventory. ``api_client`` replaces the
    kubeconfig (tests).
    """
    objs = prepare(env, secret_values, endpoints, manifests)
    cluster = Cluster(api_client) if api_client is not None else Cluster.connect(kubeconfig)
    try:
        return apply_objects(cluster, objs, env, dry_run=dry_run, timing=timing)
    finally:
        cluster.close()
