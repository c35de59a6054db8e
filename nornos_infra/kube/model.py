"""Shared vocabulary: a manifest object is a plain dict; ObjRef names one; the labels we own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

FIELD_MANAGER = "nornos-infra"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "nornos-infra"
ENV_LABEL = "nornos.io/env"


def selector(env: str) -> str:
    """The label selector that finds every object this tool applied for ``env`` (prune uses it)."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY},{ENV_LABEL}={env}"


def group_of(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


@dataclass(frozen=True, order=True)
class ObjRef:
    """Identity of an object: group (not version: v1 and v2 of a kind are the same object), kind, namespace, name."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Obj) -> ObjRef:
        meta = obj.get("metadata") or {}
        return cls(group_of(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")),
                   str(meta.get("namespace") or ""), str(meta.get("name", "")))

    def __str__(self) -> str:
        kind = f"{self.kind}.{self.group}" if self.group else self.kind
        return f"{kind} {self.namespace}/{self.name}" if self.namespace else f"{kind} {self.name}"


def stamp(objs: list[Obj], env: str) -> list[Obj]:
    """Label every object as ours and as ``env``'s (metadata only: selectors and templates stay as written)."""
    for obj in objs:
        labels = obj.setdefault("metadata", {}).setdefault("labels", {}) or {}
        labels[MANAGED_BY_LABEL] = MANAGED_BY
        labels[ENV_LABEL] = env
        obj["metadata"]["labels"] = labels
    return objs
