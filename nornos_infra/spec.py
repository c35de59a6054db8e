"""Environment files (environments/<env>.yaml): the desired state, read and validated
before any API call. Every problem is reported on its own line with the path to the
offending key, so a wrong file is fixed in one pass.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator

from nornos_infra.errors import SpecError, UserError

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
ROLES = ("k3s_server", "k3s_agent", "postgres", "redis")


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
    role: Literal["k3s_server", "k3s_agent", "postgres", "redis"]
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


class K3sSpec(_Model):
    # a local k3s binary to upload instead of downloading (air-gapped hosts); relative to the env file
    binary_path: str | None = None


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: a second
    ``workers:`` must not silently replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen[key] = line
            except TypeError:
                continue
            if first is not None:
                where = f"lines {first} and {line}" if first != line else f"line {line}"
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice ({where}); keep one", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, what: str = "") -> Any:
    """A YAML file as data; SpecError (one line) when it cannot be read, is not UTF-8 text, is
    not YAML or repeats a key."""
    source = what or str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError(source, ["file not found; environments live in environments/<env>.yaml"]) from None
    except IsADirectoryError:
        raise SpecError(source, ["is a directory, not an environment file; give the env's name "
                                 "(environments/<env>.yaml)"]) from None
    except OSError as exc:
        raise SpecError(source, [f"cannot be read ({exc.strerror or exc}); check its permissions"]) from None
    except UnicodeDecodeError as exc:
        raise SpecError(source, [f"is not UTF-8 text (byte {exc.start}); save it as UTF-8"]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(source, [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    except RecursionError:
        raise SpecError(source, ["nests too deeply to be an environment file"]) from None


def load(path: Path, overrides: dict[str, Any] | None = None, overrides_source: str = "") -> EnvSpec:
    """Read and validate an environment file, with ``overrides`` (env-file keys, see
    nornos_infra/overrides.py) merged over it; SpecError lists every problem."""
    source = str(path) + (f" with {overrides_source}" if overrides and overrides_source else "")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(str(path), ["must be a YAML mapping of settings (name, location, pools, ...)"])
    if overrides:
        raw = merge(raw, overrides)
    try:
        spec = EnvSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(source, [_describe(err) for err in exc.errors()]) from None
    problems = check_rules(spec, expected_name=path.stem)
    if problems:
        raise SpecError(source, problems)
    return spec


def check_name(env: str) -> None:
    """An environment's name as given on a command line: a name, never a path."""
    if not NAME_RE.fullmatch(env):
        shown = env if len(env) <= 40 and env.isprintable() else repr(env[:40]) + "..."
        raise UserError(f"{shown!r} is not an environment name (lowercase letters, digits and dashes, at most 20, "
                        "starting with a letter); give the name of environments/<env>.yaml, e.g. dev")


def admin_span(spec: EnvSpec) -> tuple[int, int]:
    """How many IPv4 and IPv6 addresses admin_cidrs cover together (overlaps counted once)."""
    v4 = [c for c in spec.admin_cidrs if c.version == 4]
    v6 = [c for c in spec.admin_cidrs if c.version == 6]
    return (sum(n.num_addresses for n in ipaddress.collapse_addresses(v4)),
            sum(n.num_addresses for n in ipaddress.collapse_addresses(v6)))


def wide_admin_problems(spec: EnvSpec) -> list[str]:
    """admin_cidrs wider than an office or VPN (more than a /16 of IPv4 or a /48 of IPv6 together):
    refused unless --allow-wide-admin-cidrs (docs/SECURITY.md)."""
    v4, v6 = admin_span(spec)
    problems = []
    if v4 > MAX_ADMIN_IPV4:
        problems.append(f"admin_cidrs: the IPv4 networks cover {v4:,} addresses together, more than a /16 "
                        f"({MAX_ADMIN_IPV4:,}): that is not an office or VPN; list your admin networks, or pass "
                        f"{WIDE_ADMIN_FLAG} if this is intended")
    if v6 > MAX_ADMIN_IPV6:
        problems.append(f"admin_cidrs: the IPv6 networks cover more than a /48 together: that is not an office or "
                        f"VPN; list your admin networks, or pass {WIDE_ADMIN_FLAG} if this is intended")
    return problems


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def placeholder_cidrs(spec: EnvSpec) -> list[str]:
    """admin_cidrs inside the documentation ranges: the shipped placeholder, never a real network."""
    return [str(c) for c in spec.admin_cidrs
            if any(c.network_address in d and c.broadcast_address in d for d in DOCUMENTATION_NETWORKS)]


# What to write when a required key is missing or a list is empty.
_HINTS = {
    "admin_cidrs": "list the networks allowed to reach SSH and the Kubernetes API, e.g. [203.0.113.7/32]",
    "ssh_keys": "list at least one key as {name: admin, public_key_env: SSH_PUBLIC_KEY, "
                "public_key_file: ~/.ssh/id_ed25519.pub}",
    "pools": "define the pools, e.g. control-plane: {role: k3s_server, server_type: cx23, count: 1}",
}


def _describe(err: Any) -> str:
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    hint = _HINTS.get(where)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        known = f"; known keys here: {', '.join(allowed)}" if allowed else ""
        return f"{where}: unknown key (check its spelling){known}"
    if kind == "missing":
        return f"{where}: required key is missing" + (f"; {hint}" if hint else "")
    if kind == "too_short" and hint:
        return f"{where}: must not be empty; {hint}"
    if kind.startswith("ip_") and kind.endswith("_network"):
        value = err.get("input")
        try:
            network = ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            return f"{where}: {value!r} is not a network in CIDR notation such as 10.0.0.0/16"
        return f"{where}: {value!r} has host bits set; write the network address {network}"
    return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys EnvSpec accepts at ``loc`` (a path of keys and list/dict indexes)."""
    model: type[BaseModel] = EnvSpec
    parts = list(loc)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        inner, depth = _model_in(field.annotation) if field is not None else (None, 0)
        if inner is None:
            return []
        del parts[:depth]  # skip the dict keys / list indexes between models
        model = inner
    return sorted(model.model_fields)


def _model_in(tp: Any) -> tuple[type[BaseModel] | None, int]:
    """The model inside an annotation, and how many dict/list layers wrap it."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp, 0
    origin, args = get_origin(tp), get_args(tp)
    if origin in (dict, list) and args:
        inner, depth = _model_in(args[-1])
        return inner, depth + 1
    for arg in args:  # unions and Annotated
        inner, depth = _model_in(arg)
        if inner is not None:
            return inner, depth
    return None, 0


def check_rules(spec: EnvSpec, expected_name: str | None = None) -> list[str]:
    """Rules that span keys; the live catalogue is checked separately (catalogue.py)."""
    problems: list[str] = []
    if not NAME_RE.fullmatch(spec.name):
        problems.append(f"name: {spec.name!r} must be lowercase letters, digits and dashes, at most 20, starting "
                        "with a letter and ending with a letter or digit")
    if expected_name is not None and spec.name != expected_name:
        problems.append(f"name: {spec.name!r} must match the file name {expected_name!r}")
    for pool_name in spec.pools:
        if not NAME_RE.fullmatch(pool_name):
            shown = pool_name if pool_name.isprintable() else repr(pool_name)
            problems.append(f"pools.{shown}: pool names are lowercase letters, digits and dashes, at most 20, "
                            "starting with a letter and ending with a letter or digit")
    servers = spec.pools_with_role("k3s_server")
    cp = sum(p.count for p in servers.values())
    if cp == 0:
        problems.append("pools: no k3s_server pool with count >= 1; the cluster needs a control plane")
    elif cp != 1 and cp % 2 == 0:
        problems.append(f"pools: {cp} control planes; use 1 or an odd number (etcd needs a majority)")
    for role in ("postgres", "redis"):
        pools = spec.pools_with_role(role)
        if len(pools) > 1 or sum(p.count for p in pools.values()) > 1:
            problems.append(f"pools: at most one {role} server (one pool with count 1)")
    for name, pool in spec.pools_with_role("postgres").items():
        if pool.volume_gb is None:
            problems.append(f"pools.{name}.volume_gb: the PostgreSQL server needs a data volume size in GB")
    for name, pool in spec.pools.items():
        if pool.volume_gb is not None and pool.role != "postgres":
            problems.append(f"pools.{name}.volume_gb: only the postgres pool has a volume")
    if not spec.network.subnet.subnet_of(spec.network.ip_range):
        problems.append(f"network.subnet: {spec.network.subnet} is not inside network.ip_range "
                        f"{spec.network.ip_range}")
    if not spec.network.ip_range.is_private:
        problems.append(f"network.ip_range: {spec.network.ip_range} is not a private (RFC 1918) range")
    hosts = spec.network.subnet.num_addresses - 3
    wanted = sum(p.count for p in spec.pools.values()) + (1 if spec.load_balancer else 0)
    if wanted > hosts:
        problems.append(f"network.subnet: {spec.network.subnet} holds {hosts} addresses, {wanted} are needed")
    server_count = sum(p.count for p in spec.pools.values())
    if server_count > MAX_SERVERS_PER_NETWORK:
        problems.append(f"pools: {server_count} servers, but a Hetzner private network holds at most "
                        f"{MAX_SERVERS_PER_NETWORK}; split the environment")
    v4, v6 = admin_span(spec)
    if v4 >= 2 ** 32 or v6 >= 2 ** 128:
        whole = "0.0.0.0/0" if v4 >= 2 ** 32 else "::/0"
        problems.append(f"admin_cidrs: {whole} opens SSH and the Kubernetes API to the whole internet (what the "
                        "listed networks cover together); list your admin networks instead")
    if spec.patient_data:
        for where, loc in [("location", spec.location), *(("fallback_locations", f) for f in spec.fallback_locations)]:
            if loc not in EU_LOCATIONS and loc not in NON_EU_LOCATIONS:
                problems.append(f"{where}: {loc!r} is not a Hetzner location; use one of {', '.join(EU_LOCATIONS)} "
                                "(patient data stays in the EU)")
            elif loc not in EU_LOCATIONS:
                problems.append(f"{where}: {loc} is outside the EU; an environment holding patient data may "
                                f"only use {', '.join(EU_LOCATIONS)} (GDPR data residency)")
    if spec.location in spec.fallback_locations:
        problems.append("fallback_locations: must not repeat location")
    names = [k.name for k in spec.ssh_keys]
    if len(set(names)) != len(names):
        problems.append("ssh_keys: names must be unique")
    for i, key in enumerate(spec.ssh_keys):
        if key.public_key is not None and (key.public_key_env or key.public_key_file):
            problems.append(f"ssh_keys.{i}: give public_key alone, or public_key_env and/or public_key_file")
        elif key.public_key is not None and not key.public_key.strip():
            problems.append(f"ssh_keys.{i}.public_key: is empty; paste the key, or use public_key_env or "
                            "public_key_file")
        if key.public_key_env is not None and not ENV_VAR_RE.match(key.public_key_env):
            problems.append(f"ssh_keys.{i}.public_key_env: {key.public_key_env!r} is not an environment variable "
                            "name such as SSH_PUBLIC_KEY")
    backups = spec.backups
    if backups.s3_bucket and not BUCKET_RE.match(backups.s3_bucket):
        problems.append(f"backups.s3_bucket: {backups.s3_bucket!r} is not a bucket name (3-63 lowercase letters, "
                        "digits, dots and dashes)")
    if backups.s3_bucket and not backups.s3_endpoint.startswith("https://"):
        problems.append("backups.s3_endpoint: give the object storage's https:// URL, e.g. "
                        "https://fsn1.your-objectstorage.com")
    if spec.load_balancer is not None and 22 in spec.load_balancer.services:
        problems.append("load_balancer.services: 22 is SSH; remove it: SSH reaches each server from admin_cidrs, never "
                        "through the load balancer (it cannot filter sources)")
    if spec.load_balancer is not None and 6443 in spec.load_balancer.services:
        problems.append("load_balancer.services: 6443 is the Kubernetes API; remove it and set "
                        "load_balancer.kube_api: true: kubectl then reaches every control plane on its own "
                        "firewalled address (the load balancer cannot filter sources)")
    for pool_name, pool in spec.pools.items():
        if pool.count and len(spec.server_name(pool_name, pool.count)) > 63:
            problems.append(f"pools.{pool_name}: server names would exceed 63 characters")
    return problems
