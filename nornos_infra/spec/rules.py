"""Rules that span keys, and the checks on names and admin networks the command line runs."""

from __future__ import annotations

import ipaddress

from nornos_infra.errors import UserError
from nornos_infra.spec.model import (
    BUCKET_RE,
    DOCUMENTATION_NETWORKS,
    ENV_VAR_RE,
    EU_LOCATIONS,
    MAX_ADMIN_IPV4,
    MAX_ADMIN_IPV6,
    MAX_SERVERS_PER_NETWORK,
    NAME_RE,
    NON_EU_LOCATIONS,
    WIDE_ADMIN_FLAG,
    EnvSpec,
)


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


def placeholder_cidrs(spec: EnvSpec) -> list[str]:
    """admin_cidrs inside the documentation ranges: the shipped placeholder, never a real network."""
    return [str(c) for c in spec.admin_cidrs
            if any(c.network_address in d and c.broadcast_address in d for d in DOCUMENTATION_NETWORKS)]


def check_rules(spec: EnvSpec, expected_name: str | None = None) -> list[str]:
    """Rules that span keys; the live catalogue is checked separately (catalogue.py)."""
    problems: list[str] = []
    _name_rules(spec, problems, expected_name)
    _pool_rules(spec, problems)
    _network_rules(spec, problems)
    _admin_rules(spec, problems)
    _location_rules(spec, problems)
    _ssh_key_rules(spec, problems)
    _backup_rules(spec, problems)
    _load_balancer_rules(spec, problems)
    _server_name_rules(spec, problems)
    return problems


def _name_rules(spec: EnvSpec, problems: list[str], expected_name: str | None) -> None:
    """The env's and the pools' names."""
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


def _pool_rules(spec: EnvSpec, problems: list[str]) -> None:
    """Control planes, one PostgreSQL and one Redis server, the volume."""
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


def _network_rules(spec: EnvSpec, problems: list[str]) -> None:
    """The private network and what it must hold."""
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


def _admin_rules(spec: EnvSpec, problems: list[str]) -> None:
    """Never the whole internet."""
    v4, v6 = admin_span(spec)
    if v4 >= 2 ** 32 or v6 >= 2 ** 128:
        whole = "0.0.0.0/0" if v4 >= 2 ** 32 else "::/0"
        problems.append(f"admin_cidrs: {whole} opens SSH and the Kubernetes API to the whole internet (what the "
                        "listed networks cover together); list your admin networks instead")


def _location_rules(spec: EnvSpec, problems: list[str]) -> None:
    """Patient data stays in the EU."""
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


def _ssh_key_rules(spec: EnvSpec, problems: list[str]) -> None:
    """The admin keys."""
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


def _backup_rules(spec: EnvSpec, problems: list[str]) -> None:
    """The offsite copy's bucket."""
    backups = spec.backups
    if backups.s3_bucket and not BUCKET_RE.match(backups.s3_bucket):
        problems.append(f"backups.s3_bucket: {backups.s3_bucket!r} is not a bucket name (3-63 lowercase letters, "
                        "digits, dots and dashes)")
    if backups.s3_bucket and not backups.s3_endpoint.startswith("https://"):
        problems.append("backups.s3_endpoint: give the object storage's https:// URL, e.g. "
                        "https://fsn1.your-objectstorage.com")


def _load_balancer_rules(spec: EnvSpec, problems: list[str]) -> None:
    """SSH and the Kubernetes API never behind the load balancer."""
    if spec.load_balancer is not None and 22 in spec.load_balancer.services:
        problems.append("load_balancer.services: 22 is SSH; remove it: SSH reaches each server from admin_cidrs, never "
                        "through the load balancer (it cannot filter sources)")
    if spec.load_balancer is not None and 6443 in spec.load_balancer.services:
        problems.append("load_balancer.services: 6443 is the Kubernetes API; remove it and set "
                        "load_balancer.kube_api: true: kubectl then reaches every control plane on its own "
                        "firewalled address (the load balancer cannot filter sources)")


def _server_name_rules(spec: EnvSpec, problems: list[str]) -> None:
    """Hetzner's name limit."""
    for pool_name, pool in spec.pools.items():
        if pool.count and len(spec.server_name(pool_name, pool.count)) > 63:
            problems.append(f"pools.{pool_name}: server names would exceed 63 characters")
