"""An environment's inventory built from the env file and the cloud as observed after apply.

It carries everything the bare ``pyinfra -y inventories/<env>.py deploys/all.py`` needs: the
SSH user, key and known_hosts file (host keys pinned at create time, nornos_infra/host_keys.py),
where the env's secrets are, and the settings from the env file (every key: model.HOST_DATA).
Addresses, ids, paths and settings only: never a secret.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nornos_infra import host_keys
from nornos_infra.cloud.desired import load_balancer_name, network_name
from nornos_infra.cloud.model import POOL_LABEL, ROLE_LABEL, Observed
from nornos_infra.inventory.model import SSH_USER, Inventory
from nornos_infra.spec import EnvSpec, resolve_path
from nornos_infra.vocabulary import GROUP_OF_ROLE, GROUPS

# Keys that must never appear in an inventory: secrets live in secrets/<env>.sops.yaml.
FORBIDDEN = re.compile(r"password|passwd|token|secret|private_key|api_key", re.IGNORECASE)


@dataclass(frozen=True)
class Access:
    """How the deploys reach the hosts: what the inventory says beyond addresses."""

    known_hosts_file: Path
    on_localcloud: bool = False  # localcloud's machines: no internet, host keys accepted when new
    base: Path = Path(".")  # the env file's directory: relative paths in it start there


def build(spec: EnvSpec, observed: list[Observed], on_localcloud: bool = False,
          access: Access | None = None) -> Inventory:
    """The inventory of ``spec``'s environment as observed after apply.

    ``on_localcloud``: the hosts cannot reach the internet, so roles that download (k3s)
    need a local file instead. ``access``: where the known_hosts file is and how
    to resolve the env file's paths (default: inventories/<env>.known_hosts, relative paths
    as they are).
    """
    access = access or Access(Path("inventories") / f"{spec.name}.known_hosts", on_localcloud)
    hosts = _hosts(spec, observed)
    shared = _shared(spec, observed, hosts, access, on_localcloud)
    for data in [shared, *(data for members in hosts.values() for _, data in members)]:
        _refuse_secrets(data)
    return Inventory(shared, hosts)


def _hosts(spec: EnvSpec, observed: list[Observed]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Each group's hosts, in natural name order, with their own data."""
    net_name = network_name(spec)
    devices = {o.settings.get("server_id"): o.settings.get("linux_device")
               for o in observed if o.kind == "volume" and o.settings.get("server_id") is not None}
    servers = sorted((o for o in observed if o.kind == "server" and o.labels.get(ROLE_LABEL) in GROUP_OF_ROLE),
                     key=lambda o: _natural(o.name))
    hosts: dict[str, list[tuple[str, dict[str, Any]]]] = {group: [] for group in GROUPS}
    for server in servers:
        role = server.labels[ROLE_LABEL]
        data: dict[str, Any] = {
            "ssh_hostname": server.settings.get("public_ipv4"),
            "public_ipv4": server.settings.get("public_ipv4"),
            "private_ip": (server.settings.get("private_ips") or {}).get(net_name),
            "pool": server.labels.get(POOL_LABEL),
            "role": role,
            "server_id": server.id,
            "location": server.settings.get("location"),
            "server_type": server.settings.get("server_type"),
        }
        if server.settings.get("memory_gb"):  # the type's memory: roles size PostgreSQL and Redis by it
            data["memory_mb"] = int(float(server.settings["memory_gb"]) * 1024)
        if devices.get(server.id):
            data["volume_device"] = devices[server.id]
        pool = spec.pools.get(str(server.labels.get(POOL_LABEL)))
        if pool is not None and pool.taints:
            data["k3s_taints"] = list(pool.taints)
        hosts[GROUP_OF_ROLE[role]].append((server.name, data))
    return hosts


def _shared(spec: EnvSpec, observed: list[Observed], hosts: dict[str, list[tuple[str, dict[str, Any]]]],
            access: Access, on_localcloud: bool) -> dict[str, Any]:
    """What every host shares: the network, the load balancer, who may log in and how, settings."""
    net_name = network_name(spec)
    network = _one(observed, "network", net_name)
    lb = _one(observed, "load_balancer", load_balancer_name(spec))

    def private_ips(*roles: str) -> list[str]:
        ips = [h[1]["private_ip"] for role in roles for h in hosts[GROUP_OF_ROLE[role]] if h[1]["private_ip"]]
        return sorted(ips, key=ipaddress.ip_address)

    def path(value: str | None) -> str | None:
        return str(resolve_path(value, access.base)) if value else None

    private_key = next((k.private_key_file for k in spec.ssh_keys if k.private_key_file), None)
    subnets = [s["ip_range"] for s in (network.settings.get("subnets", []) if network else [])]
    return {
        "env": spec.name,
        "network_cidr": network.settings.get("ip_range") if network else str(spec.network.ip_range),
        "subnet_cidr": str(spec.network.subnet) if str(spec.network.subnet) in subnets or not subnets
        else sorted(subnets)[0],
        "lb_public_ipv4": lb.settings.get("public_ipv4") if lb else None,
        "lb_private_ip": (lb.settings.get("private_ips") or {}).get(net_name) if lb else None,
        "k3s_server_private_ips": private_ips("k3s_server"),
        "k3s_node_private_ips": private_ips("k3s_server", "k3s_agent"),
        # for the host firewalls: who may SSH in, and which ports the load balancer forwards
        "admin_cidrs": sorted(str(c) for c in spec.admin_cidrs),
        "lb_service_ports": sorted(set(spec.load_balancer.services)) if spec.load_balancer else [],
        "kube_api_via_lb": bool(spec.load_balancer and spec.load_balancer.kube_api),
        "internet_access": not on_localcloud,
        # how pyinfra logs in: host keys verified against the keys pinned at create time
        "ssh_user": SSH_USER,
        "ssh_key": path(private_key),
        "ssh_known_hosts_file": str(access.known_hosts_file),
        "ssh_strict_host_key_checking": "accept-new" if on_localcloud else "yes",
        # where the roles find the env's secrets (nornos_infra/secrets.py)
        "sops_dir": path(spec.sops.dir),
        "sops_age_key_file": path(spec.sops.age_key_file),
        "backup_s3_endpoint": spec.backups.s3_endpoint,
        "backup_s3_bucket": spec.backups.s3_bucket,
        "backup_s3_region": spec.backups.region(),
        "backup_s3_ca_file": path(spec.backups.s3_ca_file),
        "k3s_version": spec.k3s.version,
        "k3s_binary_path": path(spec.k3s.binary_path),
    }


def known_hosts(observed: list[Observed]) -> tuple[str, list[str]]:
    """The known_hosts text for the env's servers, and the names of servers without a pinned key."""
    entries: list[tuple[list[str], str]] = []
    missing: list[str] = []
    for server in sorted((o for o in observed if o.kind == "server"), key=lambda o: _natural(o.name)):
        key = server.settings.get("host_key")
        address = server.settings.get("public_ipv4")
        if key is None:
            missing.append(server.name)
        elif address:
            entries.append(([str(address), server.name], str(key)))
    return host_keys.known_hosts(entries), missing


def _one(observed: list[Observed], kind: str, name: str) -> Observed | None:
    return next((o for o in observed if o.kind == kind and o.name == name), None)


def _natural(name: str) -> list[Any]:
    """nornos-dev-workers-2 before nornos-dev-workers-10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _refuse_secrets(data: dict[str, Any]) -> None:
    for key in data:
        if FORBIDDEN.search(key):
            raise ValueError(f"inventory key {key!r} looks like a secret; secrets belong in secrets/*.sops.yaml")
