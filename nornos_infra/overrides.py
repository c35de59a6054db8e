"""Overrides: env-file keys merged over every ``environments/<env>.yaml`` for one machine or
one run, read from the YAML file that ``$NORNOS_OVERRIDES`` names.

localcloud's own values live there, never in the committed env files: ``invoke
localcloud.up`` and ``invoke demo`` write ``.localcloud/overrides.yaml`` with localcloud's
admin key, its admin address (198.51.100.1/32) and where the demo keeps its secrets, and
pass ``NORNOS_OVERRIDES`` to provision.py. A team can use the same mechanism, e.g. a CI job
that writes its runner's address into ``admin_cidrs``.

The optional key ``endpoint`` pins a file to one API: provision.py refuses to use it against
another, so localcloud's admin address never reaches a real cloud by a stale export.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nornos_infra.errors import UserError

ENV_VAR = "NORNOS_OVERRIDES"
ENDPOINT_KEY = "endpoint"
# env-file keys that switch a guard off: only the reviewed env file may set them, never a file
# that one machine or one run brings along (docs/adr/0005-data-sovereignty.md)
GUARDS = {
    "patient_data": "whether the EU-only location guard applies is the env file's decision, made in review",
    "protection": "delete protection is the env file's decision, made in review; lift it for one run with --force",
}


@dataclass(frozen=True)
class Overrides:
    source: Path
    settings: dict[str, Any]
    endpoint: str | None = None

    def check_endpoint(self, endpoint: str) -> None:
        if self.endpoint is not None and self.endpoint.rstrip("/") != endpoint.rstrip("/"):
            raise UserError(f"{ENV_VAR}={self.source} is for {self.endpoint}, not {endpoint}; unset {ENV_VAR} "
                            "(or point HCLOUD_ENDPOINT at that API)")

    def describe(self) -> str:
        return f"overrides from {self.source} ({', '.join(sorted(self.settings)) or 'none'})"


def from_environment() -> Overrides | None:
    """The overrides $NORNOS_OVERRIDES names, or None when it is unset or empty."""
    value = os.environ.get(ENV_VAR, "").strip()
    return load(Path(value).expanduser()) if value else None


def load(path: Path) -> Overrides:
    from nornos_infra.errors import SpecError
    from nornos_infra.spec import read_yaml

    try:
        raw = read_yaml(path)  # not UTF-8, not YAML, a repeated key: one line
    except SpecError as exc:
        problem = exc.problems[0].replace("environments live in environments/<env>.yaml", "fix the path")
        raise UserError(f"{ENV_VAR}: {path} {problem}; unset {ENV_VAR} or fix the file") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise UserError(f"{ENV_VAR}: {path} must be a mapping of env-file keys (admin_cidrs, ssh_keys, ...)")
    settings = dict(raw)
    endpoint = settings.pop(ENDPOINT_KEY, None)
    if "name" in settings:
        raise UserError(f"{ENV_VAR}: {path} must not set name (it applies to every environment)")
    for guard in GUARDS:
        if guard in settings:
            raise UserError(f"{ENV_VAR}: {path} must not set {guard}: {GUARDS[guard]}")
    if endpoint is not None and not isinstance(endpoint, str):
        raise UserError(f"{ENV_VAR}: {path}: endpoint must be an API URL such as http://127.0.0.1:8700/v1")
    return Overrides(path, settings, endpoint)


def for_localcloud(endpoint: str, admin_address: str, private_key: Path, secrets_dir: Path,
                   age_key: Path, objectstorage: dict[str, str] | None = None) -> dict[str, Any]:
    """localcloud's own values: its admin address and key, the demo's secrets outside secrets/,
    and its Object Storage (endpoint and CA; the bucket name stays the env file's)."""
    settings: dict[str, Any] = {
        ENDPOINT_KEY: endpoint,
        "admin_cidrs": [f"{admin_address}/32"],
        "ssh_keys": [{"name": "admin", "public_key_file": f"{private_key}.pub", "private_key_file": str(private_key)}],
        "sops": {"dir": str(secrets_dir), "age_key_file": str(age_key)},
    }
    if objectstorage:
        settings["backups"] = {"s3_endpoint": objectstorage["endpoint"], "s3_ca_file": objectstorage["ca_file"],
                               "s3_region": objectstorage["region"]}
    return settings


def write(path: Path, settings: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("# Written by localcloud (invoke localcloud.up / demo): its own values, merged over\n"
                   f"# environments/<env>.yaml by provision.py when {ENV_VAR} names this file.\n"
                   + yaml.safe_dump(settings, sort_keys=False))
    os.replace(tmp, path)
    return path
