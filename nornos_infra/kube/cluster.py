"""The cluster, through the official kubernetes client's DynamicClient (discovery, server-side apply)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

from nornos_infra.errors import UserError
from nornos_infra.kube.model import FIELD_MANAGER, Obj


class UnknownKind(Exception):
    """The API server does not serve this apiVersion/kind (yet: a CRD may still be installing)."""


class Cluster:
    def __init__(self, api_client: Any) -> None:
        from kubernetes import dynamic

        self._tmp = tempfile.TemporaryDirectory(prefix="nornos-discovery-")
        # a fresh discovery cache per run: a stale one would hide kinds whose CRDs changed
        dynamic_client: Any = dynamic.DynamicClient  # the client's methods are untyped
        self.dyn: Any = dynamic_client(api_client, cache_file=str(Path(self._tmp.name) / "discovery.json"))

    @classmethod
    def connect(cls, kubeconfig: str | Path | None, context: str | None = None) -> Cluster:
        from kubernetes import config

        new_client: Any = config.new_client_from_config
        try:
            api_client = new_client(config_file=str(kubeconfig) if kubeconfig else None,
                                                       context=context)
        except (config.ConfigException, OSError) as exc:
            raise UserError(f"cannot load kubeconfig {kubeconfig or '(default)'}: {exc}; "
                            "fetch it with `invoke kubeconfig` or pass --kubeconfig") from None
        try:
            return cls(api_client)
        except Exception as exc:  # urllib3 errors, 401, TLS: one line, not a traceback
            raise UserError(f"cannot reach the Kubernetes API at {api_client.configuration.host}: {exc}") from None

    def close(self) -> None:
        self._tmp.cleanup()

    def resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self.dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise UnknownKind(f"{kind} ({api_version})") from None

    def get(self, obj: Obj) -> Obj | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        try:
            live = self.dyn.get(res, name=meta["name"], namespace=meta.get("namespace") if res.namespaced else None)
        except NotFoundError:
            return None
        return dict(live.to_dict())

    def apply(self, obj: Obj, dry_run: bool = False) -> Obj:
        """Server-side apply as FIELD_MANAGER, taking over conflicting fields, with strict field validation."""
        res = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        out = self.dyn.server_side_apply(
            res, body=obj, name=meta["name"], namespace=meta.get("namespace") if res.namespaced else None,
            field_manager=FIELD_MANAGER, force_conflicts=True, dry_run="All" if dry_run else None,
            query_params=[("fieldValidation", "Strict")])
        return dict(out.to_dict())

    def list(self, api_version: str, kind: str, label_selector: str) -> list[Obj]:
        res = self.resource(api_version, kind)
        items = self.dyn.get(res, label_selector=label_selector).to_dict().get("items") or []
        out = []
        for item in items:  # list items omit apiVersion and kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
            out.append(dict(item))
        return out

    def delete(self, obj: Obj, dry_run: bool = False) -> None:
        from kubernetes.dynamic.exceptions import NotFoundError

        res = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        with contextlib.suppress(NotFoundError):  # already gone: that is what we wanted
            self.dyn.delete(res, name=meta["name"], namespace=meta.get("namespace") if res.namespaced else None,
                            propagation_policy="Foreground", dry_run="All" if dry_run else None)
