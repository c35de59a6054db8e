"""The reachability summary's plan: which probes, and what the design expects of each."""

from __future__ import annotations

from nornos_infra.reachability import HERE, Host, plan

HOSTS = [
    Host("cp-1", "k3s_servers", "198.51.100.2", "10.0.1.2"),
    Host("agent-1", "k3s_agents", "198.51.100.3", "10.0.1.3"),
    Host("pg-1", "postgres", "198.51.100.4", "10.0.1.4"),
    Host("redis-1", "redis", "198.51.100.5", "10.0.1.5"),
]


def test_every_host_takes_ssh_from_the_admin() -> None:
    ssh = [p for p in plan(HOSTS) if p.port == 22]
    assert {p.target for p in ssh} == {"cp-1", "agent-1", "pg-1", "redis-1"}
    assert all(p.source == HERE and p.expect_open for p in ssh)


def test_data_services_only_from_the_cluster_over_the_private_network() -> None:
    data = {(p.source, p.target, p.address, p.port): p.expect_open for p in plan(HOSTS) if p.port in (5432, 6379)}
    assert data == {
        (HERE, "pg-1", "198.51.100.4", 5432): False,
        ("agent-1", "pg-1", "10.0.1.4", 5432): True,
        ("redis-1", "pg-1", "10.0.1.4", 5432): False,
        (HERE, "redis-1", "198.51.100.5", 6379): False,
        ("agent-1", "redis-1", "10.0.1.5", 6379): True,
        ("pg-1", "redis-1", "10.0.1.5", 6379): False,
    }


def test_the_load_balancer_is_the_public_entry() -> None:
    lb = [p for p in plan(HOSTS, "198.51.100.254", [80, 443]) if p.target == "load balancer"]
    assert [(p.source, p.address, p.port, p.expect_open) for p in lb] == [
        (HERE, "198.51.100.254", 80, True), (HERE, "198.51.100.254", 443, True)]


def test_exporters_only_from_the_cluster() -> None:
    """Prometheus runs on the k3s nodes: every exporter is open to them over the private network,
    closed from the internet side (public addresses) and from the data hosts."""
    probes = {(p.source, p.target, p.address, p.port): p.expect_open for p in plan(HOSTS)
              if p.port in (9100, 9187, 9121)}
    expected = {}
    for host in HOSTS:
        name, public, private = host.name, host.public_ip, host.private_ip
        expected[(HERE, name, public, 9100)] = False
        expected[("agent-1", name, private, 9100)] = True
        for data_host in ("pg-1", "redis-1"):
            if data_host != name:
                expected[(data_host, name, private, 9100)] = False
    expected.update({
        (HERE, "pg-1", "198.51.100.4", 9187): False, ("agent-1", "pg-1", "10.0.1.4", 9187): True,
        ("redis-1", "pg-1", "10.0.1.4", 9187): False,
        (HERE, "redis-1", "198.51.100.5", 9121): False, ("agent-1", "redis-1", "10.0.1.5", 9121): True,
        ("pg-1", "redis-1", "10.0.1.5", 9121): False,
    })
    assert probes == expected
