"""Environment files (environments/<env>.yaml): the desired state, read and validated
before any API call. Every problem is reported on its own line with the path to the
offending key, so a wrong file is fixed in one pass.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nornos_infra.errors import SpecError, UserError

# Hetzner locations inside the EU (data residency for patient data: GDPR).
EU_LOCATIONS = ("fsn1", "nbg1", "hel1")
# Names end in a letter or digit: they become label values (nornos.io/env, nornos.io/pool), and
# Hetzner rejects label values that end in a dash.
NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
MAX_SERVERS_PER_NETWORK = 100  # Hetzner's cap (hcloud-api-notes.md)
ROLES = ("k3s_server", "k3s_agent", "postgres", "redis")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SSHKeySpec(_Model):
    name: str
    public_key: str | None = None
    public_key_file: str | None = None

    def resolve(self, base: Path) -> str:
        if self.public_key:
            return self.public_key.strip()
        assert self.public_key_file is not None
        path = Path(self.public_key_file).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise UserError(f"ssh_keys.{self.name}: cannot read public_key_file {path} ({exc.strerror}); create the "
                            "key with ssh-keygen -t ed25519 or give public_key instead") from None


class NetworkSpec(_Model):
    ip_range: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.0.0/16")
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("10.0.1.0/24")
    zone: Literal["eu-central", "us-east", "us-west", "ap-southeast"] = "eu-central"


class PoolSpec(_Model):
    role: Literal["k3s_server", "k3s_agent", "postgres", "redis"]
    server_type: str
    count: Annotated[int, Field(ge=0, le=50)]
    image: str | None = None
    volume_gb: Annotated[int, Field(ge=10, le=10240)] | None = None
    labels: dict[str, str] = {}
    taints: list[str] = []


class LoadBalancerSpec(_Model):
    type: str = "lb11"
    services: list[Annotated[int, Field(ge=1, le=65535)]] = [80, 443]
    kube_api: bool = False  # also forward 6443 to the control planes
    algorithm: Literal["round_robin", "least_connections"] = "round_robin"


class EnvSpec(_Model):
    name: str
    patient_data: bool = True
    location: str = "fsn1"
    fallback_locations: list[str] = []
    image: str = "debian-12"
    protection: bool = False
    admin_cidrs: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], Field(min_length=1)]
    network: NetworkSpec = NetworkSpec()
    ssh_keys: Annotated[list[SSHKeySpec], Field(min_length=1)]
    pools: dict[str, PoolSpec]
    load_balancer: LoadBalancerSpec | None = LoadBalancerSpec()

    @field_validator("admin_cidrs", mode="before")
    @classmethod
    def _strict_cidrs(cls, value: Any) -> Any:
        if isinstance(value, list):
            for item in value:
                try:
                    ipaddress.ip_network(str(item), strict=True)
                except ValueError as exc:
                    raise ValueError(f"{item!r} is not a network address with prefix ({exc})") from exc
        return value

    # -- derived ----------------------------------------------------------------------------
    def pools_with_role(self, role: str) -> dict[str, PoolSpec]:
        return {name: pool for name, pool in self.pools.items() if pool.role == role}

    def server_name(self, pool: str, index: int) -> str:
        return f"nornos-{self.name}-{pool}-{index}"

    @property
    def all_locations(self) -> list[str]:
        return [self.location, *self.fallback_locations]


def load(path: Path) -> EnvSpec:
    """Read and validate an environment file; SpecError lists every problem."""
    source = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(source, ["file not found; environments live in environments/<env>.yaml"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(source, [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from None
    if not isinstance(raw, dict):
        raise SpecError(source, ["must be a YAML mapping of settings (name, location, pools, ...)"])
    try:
        spec = EnvSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(source, [_describe(err) for err in exc.errors()]) from None
    problems = check_rules(spec, expected_name=path.stem)
    if problems:
        raise SpecError(source, problems)
    return spec


# What to write when a required key is missing or a list is empty.
_HINTS = {
    "admin_cidrs": "list the networks allowed to reach SSH and the Kubernetes API, e.g. [203.0.113.7/32]",
    "ssh_keys": "list at least one key as {name: admin, public_key_file: ~/.ssh/id_ed25519.pub}",
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
    if not NAME_RE.match(spec.name):
        problems.append(f"name: {spec.name!r} must be lowercase letters, digits and dashes, at most 20, starting "
                        "with a letter and ending with a letter or digit")
    if expected_name is not None and spec.name != expected_name:
        problems.append(f"name: {spec.name!r} must match the file name {expected_name!r}")
    for pool_name in spec.pools:
        if not NAME_RE.match(pool_name):
            problems.append(f"pools.{pool_name}: pool names are lowercase letters, digits and dashes, at most 20, "
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
    for cidr in spec.admin_cidrs:
        if cidr.prefixlen == 0:
            problems.append(f"admin_cidrs: {cidr} opens SSH and the Kubernetes API to the whole internet; "
                            "list your admin networks instead")
    if spec.patient_data:
        for where, loc in [("location", spec.location), *(("fallback_locations", f) for f in spec.fallback_locations)]:
            if loc not in EU_LOCATIONS:
                problems.append(f"{where}: {loc} is outside the EU; an environment holding patient data may "
                                f"only use {', '.join(EU_LOCATIONS)} (GDPR data residency)")
    if spec.location in spec.fallback_locations:
        problems.append("fallback_locations: must not repeat location")
    names = [k.name for k in spec.ssh_keys]
    if len(set(names)) != len(names):
        problems.append("ssh_keys: names must be unique")
    for i, key in enumerate(spec.ssh_keys):
        if bool(key.public_key) == bool(key.public_key_file):  # an empty string counts as not given
            problems.append(f"ssh_keys.{i}: give exactly one of public_key or public_key_file")
    if spec.load_balancer is not None and 6443 in spec.load_balancer.services:
        problems.append("load_balancer.services: 6443 is the Kubernetes API; remove it and set "
                        "load_balancer.kube_api: true to forward it to the control planes only")
    for pool_name, pool in spec.pools.items():
        if pool.count and len(spec.server_name(pool_name, pool.count)) > 63:
            problems.append(f"pools.{pool_name}: server names would exceed 63 characters")
    return problems
