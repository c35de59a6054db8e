"""What the roles of one deploy share, built once per deploy instead of by each role: the
environment's name (checked), its secrets (decrypted once, with the first role that needs
them, not once per role and host) and where the apps find PostgreSQL and Redis; and ``role``,
the @deploy every role is declared with, which gives the roles the inventory's defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ParamSpec

from pyinfra.api.arguments_typed import PyinfraOperation
from pyinfra.api.deploy import deploy
from pyinfra.api.exceptions import OperationError
from pyinfra.context import host

from nornos_infra import secrets as env_secrets
from nornos_infra.inventory.model import ROLE_DEFAULTS
from nornos_infra.kube.generated import Endpoints
from nornos_infra.monitoring.scrape import Monitored
from nornos_infra.vocabulary import GROUP_OF_ROLE

P = ParamSpec("P")


def role(name: str) -> Callable[[Callable[P, Any]], PyinfraOperation[P]]:
    """pyinfra's @deploy with the inventory's ROLE_DEFAULTS as its data defaults: inside a role,
    ``host.data.get(key)`` falls back to them after the inventory's own data."""
    return deploy(name, data_defaults=ROLE_DEFAULTS)


@dataclass
class DeployContext:
    env: str
    secrets_dir: str
    age_key_file: str
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> private IPs, in inventory order
    monitored: tuple[Monitored, ...] = ()  # every host, for Prometheus's scrape jobs

    @cached_property
    def secrets(self) -> env_secrets.Secrets:
        """The env's secrets, decrypted on first use (sops + age); their repr shows names only."""
        return env_secrets.load(self.env)

    @property
    def endpoints(self) -> Endpoints:
        """Where the apps reach their data services: the first host of each group."""
        return Endpoints(postgres_host=next(iter(self.groups.get("postgres", [])), ""),
                         redis_host=next(iter(self.groups.get("redis", [])), ""), monitored=self.monitored)


_CONTEXTS: dict[tuple[str, str, str], DeployContext] = {}


def current() -> DeployContext:
    """The context of the deploy this host belongs to (one per env, secrets location and key)."""
    env = host.data.get("env")
    if not env:
        raise OperationError(f"{host.name}: the inventory names no env; run `python provision.py <env>` to "
                             "write it again")
    key = (str(env), str(env_secrets.secrets_dir()), str(env_secrets.age_key_file()))
    if key not in _CONTEXTS:
        groups = {group: [str(member.data.get("private_ip") or "") for member in host.inventory.get_group(group, [])]
                  for group in ("postgres", "redis")}
        monitored = tuple(Monitored(member.name, role, str(member.data.get("private_ip") or ""))
                          for role, group in GROUP_OF_ROLE.items() for member in host.inventory.get_group(group, []))
        _CONTEXTS[key] = DeployContext(*key, groups=groups, monitored=monitored)
    return _CONTEXTS[key]
