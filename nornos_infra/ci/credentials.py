"""``invoke ci.credentials --env E``: the files the secrets of a CI job hold, written where the
deploy looks for them, readable by their owner only, their values never printed.

- ``SOPS_AGE_KEY`` (the age identity of the env's secrets) -> ``$SOPS_AGE_KEY_FILE``, else sops'
  default ``~/.config/sops/age/keys.txt``;
- ``SSH_PRIVATE_KEY`` (the admin key whose public half is ``SSH_PUBLIC_KEY``) ->
  ``~/.ssh/id_ed25519``, where pyinfra and provision.py look when the env file names no key file;
- ``KUBECONFIG_B64`` (the job's name for the ``KUBECONFIG`` secret: a base64 kubeconfig) ->
  ``.kube/nornos-<env>.yaml``, where ``invoke manifests`` and ``invoke plan`` read it. Before the
  cluster exists there is none: the manifests step says so.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from nornos_infra import kubeconfig
from nornos_infra import secrets as env_secrets
from nornos_infra.errors import UserError


@dataclass(frozen=True)
class Written:
    variable: str
    path: Path | None  # None: the variable is not set, nothing written

    def line(self) -> str:
        if self.path is None:
            return f"{self.variable}: not set, nothing written"
        return f"{self.variable}: written to {self.path} (mode 0600)"


def _write_private(path: Path, content: bytes) -> None:
    """Created 0600 before the content goes in, so it is never readable by others, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.chmod(path, 0o600)


def _age_identity(value: str) -> bytes:
    lines = [line.strip() for line in value.strip().splitlines() if line.strip()]
    if not any(line.startswith("AGE-SECRET-KEY-") for line in lines):
        raise UserError("SOPS_AGE_KEY holds no age identity (a line AGE-SECRET-KEY-...); paste the whole key file")
    return ("\n".join(lines) + "\n").encode()


def _ssh_key(value: str) -> bytes:
    text = value.strip().replace("\r\n", "\n")
    if not (text.startswith("-----BEGIN ") and "PRIVATE KEY-----" in text):
        raise UserError("SSH_PRIVATE_KEY is not a private key in OpenSSH/PEM form (-----BEGIN ... PRIVATE KEY-----)")
    return (text + "\n").encode()


def _kubeconfig(value: str) -> bytes:
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
        document = yaml.safe_load(raw)
    except (binascii.Error, ValueError, yaml.YAMLError):
        raise UserError("KUBECONFIG_B64 is not a base64-encoded kubeconfig (make it with "
                        "`base64 -w0 .kube/nornos-<env>.yaml`)") from None
    if not isinstance(document, dict) or document.get("kind") != "Config":
        raise UserError("KUBECONFIG_B64 decodes to something that is not a kubeconfig (kind: Config)")
    return raw


def write_all(env: str, environ: Mapping[str, str] | None = None, home: Path | None = None) -> list[Written]:
    """Every credential whose variable is set; all are checked before the first file is written."""
    environ = os.environ if environ is None else environ
    home = home or Path.home()
    age_file = Path(environ.get("SOPS_AGE_KEY_FILE") or env_secrets.age_key_file())
    targets = (("SOPS_AGE_KEY", age_file, _age_identity),
               ("SSH_PRIVATE_KEY", home / ".ssh" / "id_ed25519", _ssh_key),
               ("KUBECONFIG_B64", kubeconfig.local_path(env), _kubeconfig))
    contents = [(name, path, check(environ[name]) if environ.get(name) else None) for name, path, check in targets]
    written = []
    for name, path, content in contents:
        if content is None:
            written.append(Written(name, None))
            continue
        _write_private(path, content)
        written.append(Written(name, path))
    return written
