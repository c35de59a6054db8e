"""Issue 10, finding 1, on the hosts: nftables never accepts SSH, the Kubernetes API, etcd or
the kubelet from the load balancer's private IP. Whatever reaches the LB arrives from that IP,
whoever sent it, so such a rule would open the port to the internet. 6443 comes only from the
admin networks and the k3s nodes; the LB only reaches the app ports it forwards."""

from __future__ import annotations

import re
from typing import Any

import jinja2
import pytest

from nornos_infra.roles.firewall import TEMPLATES, rule_context

DATA: dict[str, Any] = {
    "admin_cidrs": ["198.51.100.1/32"], "k3s_node_private_ips": ["10.0.1.2", "10.0.1.1", "10.0.1.3"],
    "k3s_server_private_ips": ["10.0.1.1"], "lb_private_ip": "10.0.1.9", "lb_public_ipv4": "203.0.113.9",
    "kube_api_via_lb": True,
}


def render(role: str, **data: Any) -> list[str]:
    template = jinja2.Template((TEMPLATES / "nornos.nft.j2").read_text())
    text = template.render(**rule_context({**DATA, **data}, role))
    return [line.strip() for line in text.splitlines() if "accept" in line]


@pytest.mark.parametrize("role", ["k3s_server", "k3s_agent", "postgres", "redis"])
@pytest.mark.parametrize("ports", [[80, 443], [80, 443, 6443], [22, 80, 443, 2379, 10250]])
def test_the_load_balancer_reaches_only_the_app_ports(role: str, ports: list[int]) -> None:
    lines = render(role, lb_service_ports=ports)
    from_lb = [line for line in lines if line.startswith("ip saddr 10.0.1.9 ")]
    for line in from_lb:
        forwarded = {int(p) for p in re.findall(r"\d+", line.split("dport", 1)[1].split("accept")[0])}
        assert forwarded <= {80, 443}, line
    if role in ("k3s_server", "k3s_agent"):
        assert from_lb == ['ip saddr 10.0.1.9 tcp dport { 80, 443 } accept comment "the load balancer"']
    else:
        assert from_lb == []


def test_the_kube_api_only_from_the_admins_and_the_nodes() -> None:
    lines = [line for line in render("k3s_server", lb_service_ports=[80, 443]) if "6443" in line]
    assert lines == ['ip saddr @admin tcp dport 6443 accept comment "Kubernetes API from the admin networks"',
                     'ip saddr @k3s_nodes tcp dport 6443 accept comment "Kubernetes API from the nodes"']
    ssh = [line for line in render("k3s_server") if "dport 22 " in line]
    assert ssh == ['ip saddr @admin tcp dport 22 accept comment "SSH from the admin networks"']


EXPORTERS = {"k3s_server": [9100], "k3s_agent": [9100], "postgres": [9100, 9187], "redis": [9100, 9121]}


@pytest.mark.parametrize("role", sorted(EXPORTERS))
def test_exporters_only_from_the_k3s_nodes(role: str) -> None:
    """Prometheus runs on the k3s nodes: each exporter port is open to them and to nobody else."""
    lines = render(role)
    exporter_lines = [line for line in lines if re.search(r"dport (9100|9187|9121) ", line)]
    assert [int(re.search(r"dport (\d+)", line).group(1)) for line in exporter_lines] == EXPORTERS[role]  # type: ignore[union-attr]
    assert all(line.startswith("ip saddr @k3s_nodes tcp dport ") for line in exporter_lines)
    # without k3s nodes in the inventory the exporters are open to no one (and the set is not declared)
    assert not [line for line in render(role, k3s_node_private_ips=[]) if re.search(r"dport (9100|9187|9121) ", line)]
