"""firewall (every host): nftables, inbound default drop, role rules from the inventory.

The rules live in their own table (``inet nornos``), so k3s's own rules in other tables
are left alone. A new rule set is checked with ``nft -c`` on the host before it is loaded,
loaded only when it changed, and refused at plan time when the deploy's own SSH client
would not be allowed by it: established sessions survive a reload anyway, but the next
deploy must still get in.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pyinfra.api.exceptions import OperationError
from pyinfra.context import host
from pyinfra.operations import files, server, systemd

from nornos_infra.paths import TEMPLATES
from nornos_infra.roles import context
from nornos_infra.roles.facts import SshClientAddress

RULES_PATH = "/etc/nftables.d/nornos.nft"
LB_NEVER = frozenset({22, 6443, 2379, 2380, 10250})  # admin-only or cluster-internal ports


def rule_context(data: Any, role: str) -> dict[str, Any]:
    """What the template needs, from the host's data (inside the role, ROLE_DEFAULTS fill in what the
    inventory leaves out; a key set to None counts as empty)."""
    k3s_nodes = sorted(data.get("k3s_node_private_ips") or [], key=ipaddress.ip_address)
    k3s_servers = sorted(data.get("k3s_server_private_ips") or [], key=ipaddress.ip_address)
    lb_private = data.get("lb_private_ip")
    return {
        "role": role,
        "admin_cidrs": sorted(str(c) for c in (data.get("admin_cidrs") or [])),
        "k3s_nodes": k3s_nodes,
        "k3s_servers": k3s_servers,
        "lb_private_ip": lb_private,
        # what the load balancer forwards; never SSH or the Kubernetes API: whatever reaches the LB
        # arrives from its private IP, so a rule for it here would open the port to the internet
        "app_ports": sorted(p for p in {int(p) for p in (data.get("lb_service_ports") or [])}
                            if p not in LB_NEVER),
    }


def allowed_ssh(context: dict[str, Any], address: str) -> bool:
    if not address:
        return True  # not over SSH (local connector): nothing to lock out
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(c) for c in context["admin_cidrs"])


@context.role("Firewall")
def firewall() -> None:
    rules = rule_context(host.data, str(host.data.get("role")))
    if not rules["admin_cidrs"]:
        raise OperationError(f"{host.name}: no admin_cidrs in the inventory; run provision.py to regenerate it")
    client = host.get_fact(SshClientAddress)
    if not allowed_ssh(rules, client):
        raise OperationError(f"{host.name}: this deploy connects from {client}, which the new rules would not let "
                             f"in (admin_cidrs {', '.join(rules['admin_cidrs'])}); add it to admin_cidrs first")
    files.directory(name="nftables: rules directory", path="/etc/nftables.d", mode="755")
    main = files.put(name="nftables: main file includes ours", src=str(TEMPLATES / "nftables.conf"),
                     dest="/etc/nftables.conf", mode="755")
    staged = files.template(name="nftables: stage the role's rules", src=str(TEMPLATES / "nornos.nft.j2"),
                            dest=RULES_PATH + ".new", mode="600", **rules)
    changed = staged.did_change
    # checked with nft -c first; nothing is loaded when the check fails (the old rules stay)
    server.shell(name="nftables: check (nft -c) and load the new rules",
                 commands=[f"nft -c -f {RULES_PATH}.new", f"cp {RULES_PATH}.new {RULES_PATH}", f"nft -f {RULES_PATH}"],
                 _if=lambda: changed() or main.did_change())
    systemd.service(name="nftables: enabled at boot", service="nftables", enabled=True, running=True)
