"""inventories/<env>.py: the pyinfra inventory written after a successful apply.

A generated artefact that people read in review, so it is sorted and stable (the same cloud
gives the same bytes: no timestamps), grouped by role (k3s_servers, k3s_agents, postgres,
redis), and holds addresses, ids, paths and settings only: never a secret. Every group is a
pyinfra ``(hosts, data)`` tuple; every host a ``(name, data)`` tuple.

It carries everything the bare ``pyinfra -y inventories/<env>.py deploys/all.py`` needs: the
SSH user, key and known_hosts file (host keys pinned at create time, nornos_infra/host_keys.py),
where the env's secrets are, and the settings from the env file. :data:`HOST_DATA` lists every
key a role may read, who sets it and its default; docs/DESIGN.md repeats it for people.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nornos_infra import host_keys
from nornos_infra.cloud.desired import load_balancer_name, network_name
from nornos_infra.cloud.model import POOL_LABEL, ROLE_LABEL, Observed
from nornos_infra.spec import EnvSpec, resolve_path

GROUPS = {"k3s_server": "k3s_servers", "k3s_agent": "k3s_agents", "postgres": "postgres", "redis": "redis"}
# Keys that must never appear in an inventory: secrets live in secrets/<env>.sops.yaml.
FORBIDDEN = re.compile(r"password|passwd|token|secret|private_key|api_key", re.IGNORECASE)
INDENT = "    "
SSH_USER = "root"  # Hetzner's images log in as root with the API's SSH keys

# Every host data key the deploys read: where it comes from. "provision.py" keys are written
# into every inventory; "team" keys only when you pass them (pyinfra --data key=value).
HOST_DATA: dict[str, str] = {
    # per host, from the live cloud
    "ssh_hostname": "provision.py: the server's public IPv4",
    "public_ipv4": "provision.py: the server's public IPv4",
    "private_ip": "provision.py: the server's address on the env's network",
    "pool": "provision.py: the server's pool",
    "role": "provision.py: k3s_server, k3s_agent, postgres or redis",
    "server_id": "provision.py: the Hetzner server id",
    "location": "provision.py: the server's location",
    "server_type": "provision.py: the server type",
    "memory_mb": "provision.py: the type's memory (sizes PostgreSQL and Redis)",
    "volume_device": "provision.py: the data volume's device (postgres host only)",
    "k3s_taints": "provision.py: the pool's taints (env file pools.<pool>.taints)",
    # shared by every host
    "env": "provision.py: the environment's name",
    "network_cidr": "provision.py: the network's ip_range",
    "subnet_cidr": "provision.py: the servers' subnet",
    "lb_public_ipv4": "provision.py: the load balancer's public IPv4 (None without one)",
    "lb_private_ip": "provision.py: the load balancer's private IP (None without one)",
    "k3s_server_private_ips": "provision.py: the control planes' private IPs",
    "k3s_node_private_ips": "provision.py: every k3s node's private IP",
    "admin_cidrs": "provision.py: env file admin_cidrs (who may reach SSH and 6443)",
    "lb_service_ports": "provision.py: env file load_balancer.services",
    "kube_api_via_lb": "provision.py: env file load_balancer.kube_api",
    "offline": "provision.py: True on localcloud (no internet: k3s needs k3s_binary_path)",
    "ssh_user": f"provision.py: {SSH_USER}",
    "ssh_key": "provision.py: env file ssh_keys[].private_key_file (None: your ssh-agent and ~/.ssh/id_*)",
    "ssh_known_hosts_file": "provision.py: inventories/<env>.known_hosts, the pinned host keys",
    "ssh_strict_host_key_checking": "provision.py: yes (accept-new on localcloud, whose old machines may "
                                    "predate pinned keys)",
    "sops_dir": "provision.py: env file sops.dir (None: secrets/ of this repository or $NORNOS_SECRETS_DIR)",
    "sops_age_key_file": "provision.py: env file sops.age_key_file (None: $SOPS_AGE_KEY_FILE, else "
                         "~/.config/sops/age/keys.txt)",
    "backup_s3_endpoint": "provision.py: env file backups.s3_endpoint (default empty)",
    "backup_s3_bucket": "provision.py: env file backups.s3_bucket (default empty: no offsite copy)",
    "k3s_binary_path": "provision.py: env file k3s.binary_path (default None: download, or skip offline)",
    "k3s_join_address": "team, optional (pyinfra --data): where nodes join; default the first control "
                        "plane's private IP (nornos_infra/roles/k3s.py)",
}


@dataclass(frozen=True)
class Access:
    """How the deploys reach the hosts: what the inventory says beyond addresses."""

    known_hosts_file: Path
    offline: bool = False
    base: Path = Path(".")  # the env file's directory: relative paths in it start there


def render(spec: EnvSpec, observed: list[Observed], offline: bool = False, access: Access | None = None) -> str:
    """The inventory text for ``spec``'s environment as observed after apply.

    ``offline``: the hosts cannot reach the internet (localcloud); roles that download
    (k3s) then need a local file instead. ``access``: where the known_hosts file is and how
    to resolve the env file's paths (default: inventories/<env>.known_hosts, relative paths
    as they are).
    """
    access = access or Access(Path("inventories") / f"{spec.name}.known_hosts", offline)
    net_name = network_name(spec)
    network = _one(observed, "network", net_name)
    lb = _one(observed, "load_balancer", load_balancer_name(spec))
    devices = {o.settings.get("server_id"): o.settings.get("linux_device")
               for o in observed if o.kind == "volume" and o.settings.get("server_id") is not None}
    servers = sorted((o for o in observed if o.kind == "server" and o.labels.get(ROLE_LABEL) in GROUPS),
                     key=lambda o: _natural(o.name))

    hosts: dict[str, list[tuple[str, dict[str, Any]]]] = {group: [] for group in GROUPS.values()}
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
        hosts[GROUPS[role]].append((server.name, data))

    def private_ips(*roles: str) -> list[str]:
        ips = [h[1]["private_ip"] for role in roles for h in hosts[GROUPS[role]] if h[1]["private_ip"]]
        return sorted(ips, key=ipaddress.ip_address)

    def path(value: str | None) -> str | None:
        return str(resolve_path(value, access.base)) if value else None

    private_key = next((k.private_key_file for k in spec.ssh_keys if k.private_key_file), None)
    subnets = [s["ip_range"] for s in (network.settings.get("subnets", []) if network else [])]
    common: dict[str, Any] = {
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
        "offline": offline,
        # how pyinfra logs in: host keys verified against the keys pinned at create time
        "ssh_user": SSH_USER,
        "ssh_key": path(private_key),
        "ssh_known_hosts_file": str(access.known_hosts_file),
        "ssh_strict_host_key_checking": "accept-new" if offline else "yes",
        # where the roles find the env's secrets (nornos_infra/secrets.py)
        "sops_dir": path(spec.sops.dir),
        "sops_age_key_file": path(spec.sops.age_key_file),
        "backup_s3_endpoint": spec.backups.s3_endpoint,
        "backup_s3_bucket": spec.backups.s3_bucket,
        "k3s_binary_path": path(spec.k3s.binary_path),
    }
    _refuse_secrets(common)
    for members in hosts.values():
        for _, data in members:
            _refuse_secrets(data)

    lines = [
        f"# Generated by `python provision.py {spec.name}` from environments/{spec.name}.yaml and the live cloud.",
        "# Do not edit: the next run overwrites it. Settings live in the env file; one-off changes:",
        "# pyinfra --data key=value. Every key and its source: docs/DESIGN.md (Host data).",
        f"# Holds addresses, paths and settings only, never a secret (those are in {spec.name}.sops.yaml).",
        "",
        "# Shared by every group (names starting with _ are not groups for pyinfra).",
        f"_common = {_py(common, 0)}",
    ]
    for group in GROUPS.values():
        lines += ["", f"{group} = ("]
        if hosts[group]:
            lines.append(f"{INDENT}[")
            for name, data in hosts[group]:
                lines.append(f"{INDENT * 2}({name!r}, {_py(data, 2)}),")
            lines.append(f"{INDENT}],")
        else:
            lines.append(f"{INDENT}[],")
        lines += [f"{INDENT}dict(_common),", ")"]
    return "\n".join(lines) + "\n"


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


def write(path: Path, text: str) -> bool:
    """Replace ``path`` atomically (temp file + rename); False when the content is unchanged."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _one(observed: list[Observed], kind: str, name: str) -> Observed | None:
    return next((o for o in observed if o.kind == kind and o.name == name), None)


def _natural(name: str) -> list[Any]:
    """nornos-dev-workers-2 before nornos-dev-workers-10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def _refuse_secrets(data: dict[str, Any]) -> None:
    for key in data:
        if FORBIDDEN.search(key):
            raise ValueError(f"inventory key {key!r} looks like a secret; secrets belong in secrets/*.sops.yaml")


def _py(value: Any, depth: int) -> str:
    """A Python literal, one key per line, keys in insertion order (fixed above)."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = INDENT * (depth + 1)
        items = [f"{inner}{key!r}: {_py(item, depth + 1)}," for key, item in value.items()]
        return "{\n" + "\n".join(items) + f"\n{INDENT * depth}}}"
    if isinstance(value, list):
        return "[" + ", ".join(_py(item, depth) for item in value) + "]"
    if value is None or isinstance(value, bool | int | str):
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} into an inventory")
