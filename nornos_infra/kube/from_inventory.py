"""``invoke manifests --env dev [--dry-run]``: the apply step outside pyinfra, with everything
taken from where it lives: addresses from inventories/<env>.py, secrets decrypted from
secrets/<env>.sops.yaml, the kubeconfig from ``invoke kubeconfig`` (.kube/nornos-<env>.yaml)."""

from __future__ import annotations

from pathlib import Path

from nornos_infra import inventory, kubeconfig, paths
from nornos_infra import secrets as env_secrets
from nornos_infra.errors import UserError
from nornos_infra.kube.environment import apply_environment
from nornos_infra.kube.generated import Endpoints
from nornos_infra.kube.report import Report
from nornos_infra.monitoring.scrape import Monitored
from nornos_infra.vocabulary import GROUP_OF_ROLE


def endpoints_from(inventory_file: Path) -> Endpoints:
    loaded = inventory.load(inventory_file)
    role_of_group = {group: role for role, group in GROUP_OF_ROLE.items()}
    return Endpoints(postgres_host=loaded.first("postgres").private_ip, redis_host=loaded.first("redis").private_ip,
                     monitored=tuple(Monitored(h.name, role_of_group[h.group], h.private_ip) for h in loaded.hosts()))


def apply_from_inventory(env: str, dry_run: bool) -> Report:
    endpoints = endpoints_from(paths.inventory_file(env))
    config = kubeconfig.local_path(env)
    if not config.exists():
        raise UserError(f"{config} does not exist; fetch it with `invoke kubeconfig --env {env}`")
    values = env_secrets.load(env)
    return apply_environment(env, config, {k: values[k] for k in values}, endpoints, dry_run=dry_run)
