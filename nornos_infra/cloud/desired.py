"""The desired state of an environment: every resource the spec implies, with its labels.

Names are ``nornos-<env>-...``; servers are ``nornos-<env>-<pool>-<n>`` (n from 1), so
scaling a pool down removes the highest indexes first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nornos_infra.cloud.model import ENV_LABEL, POOL_LABEL, ROLE_LABEL, Desired, labels_for
from nornos_infra.spec import EnvSpec

PLACEMENT_GROUP_SIZE = 10  # Hetzner's cap for a spread group
ANYWHERE = ["0.0.0.0/0", "::/0"]
# Ports the load balancer never publishes: SSH and the Kubernetes API are for the admin networks
# only, on each server's firewalled public address (docs/adr/0004-kube-api-exposure.md).
PRIVATE_PORTS = frozenset({22, 6443})
K3S_ROLES = ("k3s_server", "k3s_agent")


def network_name(spec: EnvSpec) -> str:
    return f"nornos-{spec.name}"


def firewall_name(spec: EnvSpec, role: str) -> str:
    return f"nornos-{spec.name}-{role.replace('_', '-')}"


def placement_group_name(spec: EnvSpec, pool: str, index: int) -> str:
    """Servers 1-10 of a pool share group 1, 11-20 group 2, and so on."""
    return f"nornos-{spec.name}-{pool}-spread-{(index - 1) // PLACEMENT_GROUP_SIZE + 1}"


def volume_name(spec: EnvSpec, pool: str) -> str:
    return f"nornos-{spec.name}-{pool}-data"


def load_balancer_name(spec: EnvSpec) -> str:
    return f"nornos-{spec.name}"


def ssh_key_name(spec: EnvSpec, key: str) -> str:
    return f"nornos-{spec.name}-{key}"


def role_selector(spec: EnvSpec, role: str) -> str:
    return f"{ENV_LABEL}={spec.name},{ROLE_LABEL}={role}"


def firewall_rules(spec: EnvSpec, role: str) -> list[dict[str, Any]]:
    """Inbound rules of a role's cloud firewall; everything not listed is denied.

    SSH (and the Kubernetes API on control planes) only from the admin networks. The apps
    are reached through the load balancer over the private network, which Hetzner's cloud
    firewalls do not filter, so no public port is opened for them; PostgreSQL and Redis
    get nothing public at all.
    """
    admins = sorted(str(c) for c in spec.admin_cidrs)
    rules = [_rule("tcp", "22", admins, "SSH from the admin networks")]
    if role == "k3s_server":
        rules.append(_rule("tcp", "6443", admins, "Kubernetes API from the admin networks"))
    return rules


def _rule(protocol: str, port: str | None, sources: list[str], description: str) -> dict[str, Any]:
    return {"direction": "in", "protocol": protocol, "port": port, "source_ips": sources,
            "destination_ips": [], "description": description}


def build(spec: EnvSpec, base: Path) -> list[Desired]:
    """Every resource of the environment; ``base`` resolves relative public key files."""
    env = spec.name
    protect = spec.protection
    out: list[Desired] = []
    keys = []
    for key in spec.ssh_keys:
        name = ssh_key_name(spec, key.name)
        keys.append(name)
        out.append(Desired("ssh_key", name, labels_for(env, "admin"),
                           {"public_key": normalize_key(key.resolve(base))}))
    out.append(Desired("network", network_name(spec), labels_for(env, "network"), {
        "ip_range": str(spec.network.ip_range),
        "subnets": [{"type": "cloud", "ip_range": str(spec.network.subnet), "network_zone": spec.network.zone}],
    }, protect))
    roles = sorted({pool.role for pool in spec.pools.values() if pool.count > 0})
    for role in roles:
        out.append(Desired("firewall", firewall_name(spec, role), labels_for(env, role), {
            "rules": firewall_rules(spec, role),
            "selectors": [role_selector(spec, role)],
        }))
    for pool_name, pool in sorted(spec.pools.items()):
        groups = sorted({placement_group_name(spec, pool_name, i) for i in range(1, pool.count + 1)})
        for group in groups:
            out.append(Desired("placement_group", group, labels_for(env, pool.role, pool_name), {"type": "spread"}))
        for index in range(1, pool.count + 1):
            name = spec.server_name(pool_name, index)
            out.append(Desired("server", name, labels_for(env, pool.role, pool_name), {
                "server_type": pool.server_type,
                "image": pool.image or spec.image,
                "location": spec.location,
                "fallback_locations": list(spec.fallback_locations),
                "networks": [network_name(spec)],
                "placement_group": placement_group_name(spec, pool_name, index),
                "ssh_keys": keys,
            }, protect))
        if pool.volume_gb is not None and pool.count > 0:
            out.append(Desired("volume", volume_name(spec, pool_name), labels_for(env, pool.role, pool_name), {
                "size": pool.volume_gb,
                "server": spec.server_name(pool_name, 1),
            }, protect))
    if spec.load_balancer is not None and any(r in roles for r in K3S_ROLES):
        lb = spec.load_balancer
        # never 6443, whatever kube_api says: a Hetzner load balancer cannot filter sources, so
        # a 6443 service would open the Kubernetes API to the internet (ADR 0004)
        services = [_service(port) for port in sorted(set(lb.services)) if port not in PRIVATE_PORTS]
        out.append(Desired("load_balancer", load_balancer_name(spec), labels_for(env, "load_balancer"), {
            "type": lb.type,
            "location": spec.location,
            "algorithm": lb.algorithm,
            "networks": [network_name(spec)],
            "services": services,
            "targets": [{"type": "label_selector", "selector": ingress_selector(spec), "use_private_ip": True}],
        }, protect))
    return out


def ingress_selector(spec: EnvSpec) -> str:
    """The LB's targets: the k3s nodes that run Traefik (a DaemonSet on ports 80/443 of every node
    without taints, manifests/addons/traefik-config.yaml). Tainted pools (the agent workers) run
    only what tolerates their taint, so the LB sends them nothing instead of failing checks."""
    selector = f"{ENV_LABEL}={spec.name},{ROLE_LABEL} in (k3s_agent,k3s_server)"
    tainted = sorted(name for name, pool in spec.pools.items() if pool.role in K3S_ROLES and pool.taints)
    if tainted:
        selector += f",{POOL_LABEL} notin ({','.join(tainted)})"
    return selector


def _service(port: int) -> dict[str, Any]:
    """A TCP pass-through service; the ingress terminates TLS, so 443 stays end-to-end encrypted."""
    return {"protocol": "tcp", "listen_port": port, "destination_port": port, "proxyprotocol": False,
            "health_check": {"protocol": "tcp", "port": port, "interval": 15, "timeout": 10, "retries": 3}}


def normalize_key(text: str) -> str:
    """``type base64`` only: comments differ between machines and must not cause a change."""
    parts = text.split()
    return " ".join(parts[:2])
