"""The inventory's contract: what inventories/<env>.py holds, typed, and the one loader every
reader outside pyinfra uses (invoke tasks, kubeconfig, the reachability check, the manifests
step, the summary table). pyinfra itself reads the same file as its inventory.

The file defines one pyinfra ``(hosts, data)`` tuple per group (GROUPS), every host a
``(name, data)`` tuple; ``_common`` holds the data every group shares. HOST_DATA lists every key a
role or a reader may use and who sets it, ROLE_DEFAULTS what a role takes when it is missing;
docs/DESIGN.md repeats both for people.
"""

from __future__ import annotations

import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from nornos_infra.errors import UserError
from nornos_infra.kube.versions import K3S_VERSION
from nornos_infra.vocabulary import GROUPS

SSH_USER = "root"  # Hetzner's images log in as root with the API's SSH keys


class HostData(TypedDict, total=False):
    """Per host, from the live cloud."""

    ssh_hostname: str | None
    public_ipv4: str | None
    private_ip: str | None
    pool: str | None
    role: str
    server_id: int
    location: str | None
    server_type: str | None
    memory_mb: int
    volume_device: str
    k3s_taints: list[str]


class SharedData(TypedDict, total=False):
    """Shared by every host of the environment."""

    env: str
    network_cidr: str | None
    subnet_cidr: str
    lb_public_ipv4: str | None
    lb_private_ip: str | None
    k3s_server_private_ips: list[str]
    k3s_node_private_ips: list[str]
    admin_cidrs: list[str]
    lb_service_ports: list[int]
    kube_api_via_lb: bool
    internet_access: bool
    ssh_user: str
    ssh_key: str | None
    ssh_known_hosts_file: str
    ssh_strict_host_key_checking: str
    sops_dir: str | None
    sops_age_key_file: str | None
    backup_s3_endpoint: str
    backup_s3_bucket: str
    backup_s3_region: str
    backup_s3_ca_file: str | None
    k3s_version: str
    k3s_binary_path: str | None


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
    "internet_access": "provision.py: whether the hosts reach the internet (False on localcloud: k3s then "
                       "needs k3s_binary_path)",
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
    "backup_s3_region": "provision.py: env file backups.s3_region (default the endpoint's first label)",
    "backup_s3_ca_file": "provision.py: env file backups.s3_ca_file (default None: the endpoint's certificate "
                         "chains to a public CA)",
    "k3s_version": "provision.py: env file k3s.version (default the newest pinned release, "
                   "nornos_infra/kube/versions.py); raised by `invoke upgrade`",
    "k3s_binary_path": "provision.py: env file k3s.binary_path (default None: download, or skip offline)",
    "k3s_join_address": "team, optional (pyinfra --data): where nodes join; default the first control "
                        "plane's private IP (nornos_infra/roles/k3s.py)",
}
TEAM_KEYS = frozenset({"k3s_join_address"})

# What the roles take for a key the inventory leaves out (a team key not passed, an inventory written
# by hand or by an older provision.py): the one place for role defaults. Every role's @deploy hands
# them to pyinfra as data_defaults (nornos_infra/roles/ops.py role), which looks them up after the
# inventory's own data, so ``host.data.get(key)`` in a role needs no fallback of its own.
ROLE_DEFAULTS: dict[str, Any] = {
    "role": "",  # base and firewall only
    "ssh_user": SSH_USER,
    "admin_cidrs": [],  # nobody: the firewall role then refuses to run
    "k3s_server_private_ips": [],
    "k3s_node_private_ips": [],
    "lb_private_ip": None,
    "lb_service_ports": [80, 443],  # the env file's load_balancer.services default
    "k3s_taints": [],
    "k3s_version": K3S_VERSION,
    "k3s_binary_path": None,
    "k3s_join_address": None,  # the first control plane's private IP
    "internet_access": True,
    "backup_s3_endpoint": "",
    "backup_s3_bucket": "",  # no offsite copy
    "backup_s3_region": "fsn1",
    "backup_s3_ca_file": None,
}


@dataclass(frozen=True)
class Host:
    """One host as pyinfra sees it: its own data over the shared data."""

    name: str
    group: str
    data: dict[str, Any]

    @property
    def public_ipv4(self) -> str:
        return str(self.data.get("public_ipv4") or "")

    @property
    def private_ip(self) -> str:
        return str(self.data.get("private_ip") or "")

    @property
    def ssh_hostname(self) -> str:
        return str(self.data.get("ssh_hostname") or self.public_ipv4)


@dataclass(frozen=True)
class Inventory:
    """An environment's inventory: the shared data and each group's hosts, in file order."""

    shared: dict[str, Any]
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    source: Path | None = None

    def hosts(self, *groups: str) -> list[Host]:
        """The hosts of ``groups`` (all groups when none is named), in the file's order."""
        return [Host(name, group, {**self.shared, **data})
                for group in (groups or GROUPS) for name, data in self.groups.get(group, [])]

    def host(self, name: str) -> Host:
        for host in self.hosts():
            if host.name == name:
                return host
        raise KeyError(name)

    def first(self, group: str) -> Host:
        """The group's first host by name (the one k3s joins through, the one apps connect to)."""
        hosts = sorted(self.hosts(group), key=lambda h: h.name)
        if not hosts:
            raise UserError(f"{self.source or 'the inventory'} has no {group} host")
        return hosts[0]


def load(path: Path) -> Inventory:
    """Read inventories/<env>.py as pyinfra would (it is Python), and check its shape."""
    if not path.is_file():
        raise UserError(f"{path} does not exist; run `python provision.py {path.stem}` first")
    try:
        module = runpy.run_path(str(path))
    except Exception as exc:  # a hand-edited file that no longer runs
        raise UserError(f"{path} cannot be read as an inventory ({type(exc).__name__}: {exc}); "
                        f"run `python provision.py {path.stem}` to write it again") from None
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    shared: dict[str, Any] = dict(module.get("_common") or {})
    for group in GROUPS:
        value = module.get(group, ([], shared))
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], list)
                and all(isinstance(h, tuple) and len(h) == 2 and isinstance(h[1], dict) for h in value[0])):
            raise UserError(f"{path}: {group} is not a pyinfra (hosts, data) group; run `python provision.py "
                            f"{path.stem}` to write the inventory again")
        groups[group] = [(str(name), dict(data)) for name, data in value[0]]
        shared = shared or dict(value[1] or {})
    return Inventory(shared, groups, path)
