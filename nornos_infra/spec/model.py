"""The environment file's model: its keys and types (pydantic), the constants its rules use,
and the checks on a single key (SSH public keys parsed here)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from nornos_infra import k3s_releases
from nornos_infra.errors import UserError
from nornos_infra.kube.versions import K3S_VERSION

# Hetzner locations inside the EU (data residency for patient data: GDPR).
EU_LOCATIONS = ("fsn1", "nbg1", "hel1")


# Names end in a letter or digit: they become label values (nornos.io/env, nornos.io/pool), and
# Hetzner rejects label values that end in a dash. Always matched WHOLE (fullmatch): with
# ``match`` and ``$``, a trailing newline would pass.
NAME_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?")


# Hetzner locations outside the EU: named as such; anything else is not a Hetzner location.
NON_EU_LOCATIONS = ("ash", "hil", "sin")


# admin_cidrs are the offices and VPNs that may reach SSH and the Kubernetes API. Together they
# may span at most a /16 of IPv4 addresses and a /48 of IPv6 (a site's allocation): more is an
# ISP or a cloud, not an admin network, and needs --allow-wide-admin-cidrs (docs/SECURITY.md).
MAX_ADMIN_IPV4 = 2 ** 16


MAX_ADMIN_IPV6 = 2 ** 80


WIDE_ADMIN_FLAG = "--allow-wide-admin-cidrs"


# A Kubernetes taint: key[=value]:Effect (key: an optional DNS prefix and a name).
TAINT_RE = re.compile(r"(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?/)?[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
                      r"(?:=(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?)?"
                      r":(?:NoSchedule|PreferNoSchedule|NoExecute)")


MAX_SERVERS_PER_NETWORK = 100  # Hetzner's cap on servers in one private network


# The admin key when the env file names no file of its own (ssh-keygen's default name).
DEFAULT_PUBLIC_KEY_FILE = "~/.ssh/id_ed25519.pub"


# Documentation ranges (RFC 5737, RFC 3849): the shipped files' placeholder admin_cidrs.
DOCUMENTATION_NETWORKS = tuple(ipaddress.ip_network(n) for n in
                               ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))


PUBLIC_KEY_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|"
                           r"sk-ecdsa-sha2-nistp256@openssh\.com) ([A-Za-z0-9+/]+={0,2})( .*)?$")


ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SSHKeySpec(_Model):
    """An admin key. Where its public half comes from, first match wins: ``public_key``; the
    environment variable named by ``public_key_env`` (a CI secret) when it is set; the file
    ``public_key_file`` (default ~/.ssh/id_ed25519.pub). ``private_key_file`` is what the
    deploys log in with; without it they use your ssh-agent and ~/.ssh/id_* keys."""

    name: str
    public_key: str | None = None
    public_key_env: str | None = None
    public_key_file: str | None = None
    private_key_file: str | None = None

    def resolve(self, base: Path) -> str:
        """The public key (``type base64 [comment]``); relative files are read from ``base``."""
        if self.public_key:
            return _checked_key(self.public_key, f"ssh_keys.{self.name}.public_key")
        if self.public_key_env and os.environ.get(self.public_key_env, "").strip():
            return _checked_key(os.environ[self.public_key_env], f"ssh_keys.{self.name}: ${self.public_key_env}")
        path = resolve_path(self.public_key_file or DEFAULT_PUBLIC_KEY_FILE, base)
        try:
            text = path.read_text()
        except OSError as exc:
            from_env = f"${self.public_key_env} is not set and " if self.public_key_env else ""
            hint = f"export {self.public_key_env}=\"$(cat your-key.pub)\" or " if self.public_key_env else ""
            raise UserError(f"ssh_keys.{self.name}: {from_env}cannot read {path} ({exc.strerror}); {hint}create the "
                            "key with ssh-keygen -t ed25519, or set public_key_file in the env file") from None
        return _checked_key(text, f"ssh_keys.{self.name}: {path}")

    def private_key(self, base: Path) -> Path | None:
        return resolve_path(self.private_key_file, base) if self.private_key_file else None


def resolve_path(value: str, base: Path) -> Path:
    """A path from an env file: ``~`` expanded, relative ones from the file's directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _checked_key(text: str, where: str) -> str:
    """An OpenSSH public key line whose key really parses (type, inner type, key material); the
    text itself is never echoed (it may be a pasted private key)."""
    line = text.strip()
    fix = "one line such as 'ssh-ed25519 AAAA... you@host', the .pub file ssh-keygen wrote"
    if "PRIVATE KEY" in line:
        raise UserError(f"{where} is a PRIVATE key, not an SSH public key: never paste it; give its .pub half "
                        f"({fix})")
    match = PUBLIC_KEY_RE.match(line) if "\n" not in line and "\r" not in line else None
    problem = "is not an SSH public key" if match is None else _key_problem(match.group(1), match.group(3))
    if problem:
        raise UserError(f"{where} {problem} ({fix})")
    return line


def _key_problem(kind: str, b64: str) -> str | None:
    """Why a public key's base64 part is not a key of ``kind``, or None (parsed here, no API)."""
    try:
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        return "is not an SSH public key (its base64 part is damaged)"
    fields: list[bytes] = []
    rest = blob
    while rest:
        if len(rest) < 4 or int.from_bytes(rest[:4], "big") > len(rest) - 4:
            return "is not an SSH public key (its key data is cut off or damaged)"
        size = int.from_bytes(rest[:4], "big")
        fields.append(rest[4:4 + size])
        rest = rest[4 + size:]
    if not fields or fields[0] != kind.encode():
        return f"is not an SSH public key (its key data is not a {kind} key)"
    if kind == "ssh-ed25519":
        ok = len(fields) == 2 and len(fields[1]) == 32
    elif kind == "sk-ssh-ed25519@openssh.com":
        ok = len(fields) == 3 and len(fields[1]) == 32 and fields[2].startswith(b"ssh:")
    elif kind == "ssh-rsa":
        if len(fields) != 3:
            return "is not an SSH public key (damaged RSA key data)"
        bits = int.from_bytes(fields[2], "big").bit_length()
        if bits < 2048:
            return f"is an RSA key of {bits} bits; use at least 2048 bits, better ssh-keygen -t ed25519"
        ok = True
    else:  # ecdsa-sha2-nistpNNN and sk-ecdsa: curve name, then an uncompressed point
        curve = kind.removeprefix("sk-").removeprefix("ecdsa-sha2-").split("@")[0].encode()
        size = {b"nistp256": 65, b"nistp384": 97, b"nistp521": 133}.get(curve, 0)
        ok = len(fields) >= 3 and fields[1] == curve and len(fields[2]) == size and fields[2][:1] == b"\x04"
    return None if ok else f"is not an SSH public key (damaged {kind} key data)"


class NetworkSpec(_Model):
    ip_range: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.0.0/16")
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.1.0/24")
    zone: Literal["eu-central", "us-east", "us-west", "ap-southeast"] = "eu-central"


class PoolSpec(_Model):
    role: Literal["k3s_server", "k3s_agent", "postgres", "redis"]  # vocabulary.GROUP_OF_ROLE (a test holds them equal)
    server_type: str
    count: Annotated[StrictInt, Field(ge=0, le=50)]
    image: str | None = None
    volume_gb: Annotated[StrictInt, Field(ge=10, le=10240)] | None = None
    taints: list[str] = []

    @field_validator("taints")
    @classmethod
    def _taints(cls, value: list[str]) -> list[str]:
        for taint in value:
            if not TAINT_RE.fullmatch(taint):
                raise ValueError(f"{taint!r} is not a taint; write key[=value]:Effect with Effect NoSchedule, "
                                 "PreferNoSchedule or NoExecute, e.g. nornos.io/agents=true:NoSchedule")
        return value


class LoadBalancerSpec(_Model):
    type: str = "lb11"
    services: list[Annotated[StrictInt, Field(ge=1, le=65535)]] = [80, 443]
    # kubectl from the admin networks on EVERY control plane's public address (one kubeconfig
    # context each): the load balancer never carries 6443, it cannot filter sources
    # (docs/adr/0004-kube-api-exposure.md)
    kube_api: StrictBool = False
    algorithm: Literal["round_robin", "least_connections"] = "round_robin"


class BackupsSpec(_Model):
    """Offsite backup copies (age-encrypted before upload, S3 API). Off while s3_bucket is empty
    or the env's secrets have no object_storage_access_key."""

    s3_endpoint: str = ""
    s3_bucket: str = ""
    # the CA that signs the endpoint's certificate, for an S3 service outside the public PKI
    # (localcloud's); Hetzner's endpoints need none. Relative to the env file
    s3_ca_file: str | None = None
    # the signing region; empty: the endpoint's first label (fsn1 of https://fsn1.your-objectstorage.com)
    s3_region: str = ""
    # object lock (compliance mode): no key, not even the hosts' own, can delete or overwrite an
    # uploaded copy for this many days (docs/RUNBOOK.md, "Offsite backups")
    lock_days: StrictInt = Field(default=30, ge=1, le=3650)

    def region(self) -> str:
        if self.s3_region:
            return self.s3_region
        host = self.s3_endpoint.removeprefix("https://").split("/")[0].split(":")[0]
        first = host.split(".")[0]
        return first if "." in host and not first.isdigit() else "fsn1"


class K3sSpec(_Model):
    # the release the hosts run: one with a pinned checksum (nornos_infra/k3s_releases.py); raising it
    # is an upgrade (`invoke upgrade`), and the deploy never installs an older one over a newer one
    version: str = K3S_VERSION
    # a local k3s binary to upload instead of downloading (air-gapped hosts); relative to the env file
    binary_path: str | None = None

    @field_validator("version")
    @classmethod
    def _pinned(cls, value: str) -> str:
        try:
            k3s_releases.pinned_sha256(str(k3s_releases.parse(value)))
        except UserError as exc:
            raise ValueError(str(exc)) from None
        if str(k3s_releases.parse(value)) != value:
            raise ValueError(f"{value!r} is not a k3s version (like {K3S_VERSION})")
        return value


class SopsSpec(_Model):
    """Where deploys find <dir>/<env>.sops.yaml and the age key that decrypts it; unset: secrets/
    of this repository and $SOPS_AGE_KEY_FILE, else ~/.config/sops/age/keys.txt."""

    dir: str | None = None
    age_key_file: str | None = None


class EnvSpec(_Model):
    name: str
    patient_data: StrictBool = True
    location: str = "fsn1"
    fallback_locations: list[str] = []
    image: str = "debian-12"
    protection: StrictBool = False
    admin_cidrs: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], Field(min_length=1)]
    network: NetworkSpec = NetworkSpec()
    ssh_keys: Annotated[list[SSHKeySpec], Field(min_length=1)]
    pools: dict[str, PoolSpec]
    load_balancer: LoadBalancerSpec | None = LoadBalancerSpec()
    backups: BackupsSpec = BackupsSpec()
    k3s: K3sSpec = K3sSpec()
    sops: SopsSpec = SopsSpec()

    @field_validator("admin_cidrs", mode="before")
    @classmethod
    def _strict_cidrs(cls, value: Any) -> Any:
        if isinstance(value, list):
            for item in value:
                try:
                    ipaddress.ip_network(str(item), strict=True)
                except ValueError as exc:
                    try:
                        network = ipaddress.ip_network(str(item), strict=False)
                    except ValueError:
                        raise ValueError(f"{item!r} is not a network address with prefix ({exc})") from exc
                    raise ValueError(f"{item!r} has host bits set; write the network address {network}") from exc
        return value

    # -- derived ----------------------------------------------------------------------------
    def pools_with_role(self, role: str) -> dict[str, PoolSpec]:
        return {name: pool for name, pool in self.pools.items() if pool.role == role}

    def server_name(self, pool: str, index: int) -> str:
        return f"nornos-{self.name}-{pool}-{index}"

    @property
    def all_locations(self) -> list[str]:
        return [self.location, *self.fallback_locations]
