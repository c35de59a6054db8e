"""What the cloud layer reasons about: desired resources, observed resources, planned changes.

Labels are the state (no state file): every resource carries ``nornos.io/env``,
``nornos.io/role`` (and ``nornos.io/pool`` for servers) and ``managed-by=nornos-infra``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ENV_LABEL = "nornos.io/env"
ROLE_LABEL = "nornos.io/role"
POOL_LABEL = "nornos.io/pool"
MANAGED_LABEL = "managed-by"
MANAGED_VALUE = "nornos-infra"

# Resource kinds in the order they are created (deleted in reverse).
KINDS = ("ssh_key", "network", "firewall", "placement_group", "server", "volume", "load_balancer")


def env_selector(env: str) -> str:
    """The label selector of everything this tool manages for one environment."""
    return f"{ENV_LABEL}={env},{MANAGED_LABEL}={MANAGED_VALUE}"


def labels_for(env: str, role: str, pool: str | None = None) -> dict[str, str]:
    labels = {ENV_LABEL: env, ROLE_LABEL: role, MANAGED_LABEL: MANAGED_VALUE}
    if pool is not None:
        labels[POOL_LABEL] = pool
    return labels


@dataclass(frozen=True)
class Desired:
    """One resource as the spec wants it. ``settings`` holds the kind's comparable settings."""

    kind: str
    name: str
    labels: dict[str, str]
    settings: dict[str, Any]
    protect: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)


@dataclass
class Observed:
    """One resource as the API shows it: the raw JSON plus the same comparable settings."""

    kind: str
    id: int
    name: str
    labels: dict[str, str]
    settings: dict[str, Any]
    protected: bool
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)


class Op(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    RESIZE = "resize"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "resize": "~", "replace": "-/+", "delete": "-", "no-op": " "}[
            self.value]

    @property
    def destructive(self) -> bool:
        return self in (Op.DELETE, Op.REPLACE)


@dataclass
class Step:
    """One sub-change of an update, e.g. ``set firewall rules`` or ``attach to network nornos-dev``."""

    what: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Change:
    op: Op
    kind: str
    name: str
    reasons: list[str]
    desired: Desired | None = None
    observed: Observed | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)
