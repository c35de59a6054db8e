"""SSH keys: installed on servers at creation; a changed key is replaced (keys are immutable)."""

from __future__ import annotations

from typing import Any

from nornos_infra.cloud.desired import normalize_key
from nornos_infra.cloud.model import Desired, Observed
from nornos_infra.cloud.resources.base import Ctx, Index, Kind, Verdict


class SSHKeys(Kind):
    kind, path, key = "ssh_key", "/ssh_keys", "ssh_keys"
    protection_keys = ()

    def settings(self, raw: dict[str, Any], index: Index) -> dict[str, Any]:
        return {"public_key": normalize_key(raw["public_key"])}

    def compare(self, want: Desired, have: Observed, index: Index, verdict: Verdict) -> None:
        if want.settings["public_key"] != have.settings["public_key"]:
            verdict.replace("public key changed (keys cannot be edited; servers keep the keys they booted with)")

    def create(self, ctx: Ctx, want: Desired) -> int:
        body = {"name": want.name, "public_key": want.settings["public_key"], "labels": want.labels}
        try:
            data, _ = self.create_or_adopt(
                ctx, want, lambda: ctx.conn.request("POST", self.path, f"create ssh key {want.name}", json=body),
                "ssh_key")
        except Exception as exc:
            # the same key under another name (fingerprint taken): adopt that key
            if getattr(exc, "code", None) != "uniqueness_error":
                raise
            existing = ctx.conn.request("GET", self.path, "find ssh key",
                                        params={"fingerprint": _fingerprint(want.settings["public_key"])})
            if not existing["ssh_keys"]:
                raise
            data = {"ssh_key": existing["ssh_keys"][0]}
            ctx.log(f"the key of {want.name} exists as {data['ssh_key']['name']}; using it")
        ident = int(data["ssh_key"]["id"])
        ctx.index.add(self.kind, want.name, ident)
        return ident

    def delete(self, ctx: Ctx, have: Observed, force: bool) -> None:
        ctx.conn.request("DELETE", f"{self.path}/{have.id}", f"delete ssh key {have.name}")


def _fingerprint(public_key: str) -> str:
    import base64
    import hashlib

    digest = hashlib.md5(base64.b64decode(public_key.split()[1])).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))
