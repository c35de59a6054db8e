"""A unified diff like `kubectl diff --server-side`: live object against the dry-run apply result.

Server-set noise (managedFields, resourceVersion, uid, generation, timestamps, status) is dropped;
Secret values are masked the way kubectl masks them: "***" when equal, "*** (before)" and
"*** (after)" when changed, so a diff shows that a secret changes and never what it is.
"""

from __future__ import annotations

import copy
import difflib

import yaml

from nornos_infra.kube.model import Obj, ObjRef

NOISE = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink")


def clean(obj: Obj | None) -> Obj | None:
    if obj is None:
        return None
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in NOISE:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    annotations.pop("deployment.kubernetes.io/revision", None)
    if not annotations:
        meta.pop("annotations", None)
    return out


def mask_secrets(live: Obj | None, merged: Obj | None) -> tuple[Obj | None, Obj | None]:
    """Copies of a Secret pair with every value replaced; other kinds come back untouched."""
    if (merged or live or {}).get("kind") != "Secret":
        return live, merged
    live, merged = copy.deepcopy(live), copy.deepcopy(merged)
    for field in ("data", "stringData"):
        before = (live or {}).get(field) or {}
        after = (merged or {}).get(field) or {}
        for key in set(before) | set(after):
            if key in before and key in after and before[key] == after[key]:
                before[key] = after[key] = "***"
            else:
                if key in before:
                    before[key] = "*** (before)"
                if key in after:
                    after[key] = "*** (after)"
    return live, merged


def _text(obj: Obj | None) -> list[str]:
    return [] if obj is None else yaml.safe_dump(obj, sort_keys=True, default_flow_style=False).splitlines(True)


def unified(ref: ObjRef, live: Obj | None, merged: Obj | None) -> str:
    """The diff of one object ("" when unchanged); a missing side means create or delete."""
    live, merged = mask_secrets(clean(live), clean(merged))
    name = f"{ref.group or 'core'}.{ref.kind}.{ref.namespace or '_'}.{ref.name}"
    lines = difflib.unified_diff(_text(live), _text(merged), fromfile=f"live/{name}", tofile=f"merged/{name}")
    return "".join(lines)
