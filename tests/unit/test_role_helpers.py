"""The pure helpers of the roles: memory sizing, the firewall's rule context and SSH check, the
pg_hba entries, the Redis ACL file and SCRAM verifiers. Found by the mutation score (scripts/mutation_score.py):
no test reached sizing, allowed_ssh, hba_entries or acl_file, and rule_context's ordering and
filtering were never asserted."""

from __future__ import annotations

import base64
import hashlib

import pytest

from nornos_infra.inventory import ROLE_DEFAULTS
from nornos_infra.roles import scram, sizing
from nornos_infra.roles.firewall import allowed_ssh, rule_context
from nornos_infra.roles.postgres import hba_entries
from nornos_infra.roles.redis import ADMIN_USER, APP_USER, acl_file


@pytest.mark.parametrize(("fact", "inventory", "expected"), [
    (16000, 4096, 4096),   # localcloud's container sees the whole machine: the type's memory wins
    (3900, 4096, 3900),    # a real host reports a little less than the type: the fact wins
    (3900, None, 3900),    # no memory_mb in the inventory
    (3900, 0, 3900),
    (0, 4096, 4096),       # no fact
    (0, None, 1024),       # nothing known: a safe default
    (-1, -5, 1024),
])
def test_effective_memory_is_the_smaller_known_figure(fact: int, inventory: int | None, expected: int) -> None:
    assert sizing.effective_mb(fact, inventory) == expected


def test_postgres_settings_for_a_4_gb_server() -> None:
    assert sizing.postgres_settings(4096) == {
        "shared_buffers": "1024MB",
        "effective_cache_size": "3072MB",
        "maintenance_work_mem": "256MB",
        "work_mem": "16MB",
        "wal_buffers": "16MB",
        "max_connections": "200",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
    }


def test_postgres_settings_floors_on_a_tiny_server() -> None:
    s = sizing.postgres_settings(256)
    assert (s["shared_buffers"], s["effective_cache_size"], s["maintenance_work_mem"], s["work_mem"]) == (
        "128MB", "256MB", "64MB", "4MB")


def test_postgres_settings_just_above_the_floors() -> None:
    # 1100 MB: 275 shared (> 128), 825 cache (> 256), 68 maintenance (> 64), 4 work_mem (1100 // 256 = 4)
    s = sizing.postgres_settings(1100)
    assert (s["shared_buffers"], s["effective_cache_size"], s["maintenance_work_mem"], s["work_mem"]) == (
        "275MB", "825MB", "68MB", "4MB")
    assert sizing.postgres_settings(1536)["work_mem"] == "6MB"


def test_postgres_maintenance_work_mem_is_capped_at_2_gb() -> None:
    assert sizing.postgres_settings(65536)["maintenance_work_mem"] == "2048MB"
    assert sizing.postgres_settings(32768)["maintenance_work_mem"] == "2048MB"
    assert sizing.postgres_settings(16384)["maintenance_work_mem"] == "1024MB"


@pytest.mark.parametrize(("memory", "expected"), [(4096, 2457), (1000, 600), (100, 64), (106, 64), (110, 66)])
def test_redis_maxmemory_is_60_percent_with_a_floor(memory: int, expected: int) -> None:
    assert sizing.redis_maxmemory_mb(memory) == expected


def test_rule_context_orders_addresses_numerically_and_filters_lb_ports() -> None:
    data = {
        "k3s_node_private_ips": ["10.0.1.10", "10.0.1.9", "10.0.1.100"],
        "k3s_server_private_ips": ["10.0.1.20", "10.0.1.3"],
        "lb_private_ip": "10.0.1.254",
        "admin_cidrs": ["203.0.113.0/24", "198.51.100.7/32"],
        "lb_service_ports": [443, "80", 22, 6443, 2379, 2380, 10250, 8080, 443],
    }
    assert rule_context(data, "k3s_server") == {
        "role": "k3s_server",
        "admin_cidrs": ["198.51.100.7/32", "203.0.113.0/24"],
        "k3s_nodes": ["10.0.1.9", "10.0.1.10", "10.0.1.100"],
        "k3s_servers": ["10.0.1.3", "10.0.1.20"],
        "lb_private_ip": "10.0.1.254",
        "app_ports": [80, 443, 8080],
    }


def test_rule_context_defaults() -> None:
    """Inside the role, pyinfra hands rule_context the inventory's data over ROLE_DEFAULTS."""
    assert rule_context(ROLE_DEFAULTS, "postgres") == {
        "role": "postgres",
        "admin_cidrs": [],
        "k3s_nodes": [],
        "k3s_servers": [],
        "lb_private_ip": None,
        "app_ports": [80, 443],
    }
    # an env without a load balancer writes [] (nothing forwarded: no port to open); None is empty too
    assert rule_context({**ROLE_DEFAULTS, "lb_service_ports": []}, "redis")["app_ports"] == []
    nulls = {k: None for k in ("k3s_node_private_ips", "k3s_server_private_ips", "admin_cidrs", "lb_service_ports")}
    assert rule_context(nulls, "redis") == {"role": "redis", "admin_cidrs": [], "k3s_nodes": [], "k3s_servers": [],
                                            "lb_private_ip": None, "app_ports": []}


def test_allowed_ssh() -> None:
    context = rule_context({"admin_cidrs": ["203.0.113.0/24", "2001:db8::/32"]}, "postgres")
    assert allowed_ssh(context, "203.0.113.77")
    assert allowed_ssh(context, "2001:db8::1")
    assert not allowed_ssh(context, "203.0.114.1")
    assert not allowed_ssh(context, "198.51.100.7")
    assert allowed_ssh(context, "")  # not over SSH: nothing to lock out
    assert not allowed_ssh(rule_context({}, "postgres"), "203.0.113.77")  # no admin CIDR: nobody


def test_hba_entries_one_host_each_in_address_order() -> None:
    assert hba_entries(["10.0.1.10", "10.0.1.9", "10.0.1.100"]) == ["10.0.1.9/32", "10.0.1.10/32", "10.0.1.100/32"]
    assert hba_entries([]) == []


def test_redis_acl_file() -> None:
    app = hashlib.sha256(b"app-secret").hexdigest()
    admin = hashlib.sha256(b"admin-secret").hexdigest()
    monitor = hashlib.sha256(b"monitor-secret").hexdigest()
    made = acl_file("app-secret", "admin-secret", "monitor-secret")
    assert made == (
        "user default off\n"
        f"user {APP_USER} on #{app} ~* &* +@all -@dangerous\n"
        f"user {ADMIN_USER} on #{admin} ~* &* +@all\n"
        f"user nornos_monitor on #{monitor} resetkeys resetchannels -@all +ping +info +config|get +client|list "
        "+client|info +client|setname +slowlog|get +slowlog|len +latency|latest +memory|stats +select\n")
    assert "secret" not in made.replace(app, "").replace(admin, "").replace(monitor, "")


def test_scram_verifier_has_a_fresh_16_byte_salt_and_the_default_iterations() -> None:
    made = scram.verifier("s3cret")
    head, salt_b64 = made.split("$")[1].split(":")
    assert head == "4096"
    assert len(base64.b64decode(salt_b64)) == 16  # what PostgreSQL itself uses


def test_scram_matches_needs_both_keys_and_the_stated_iterations() -> None:
    made = scram.verifier("s3cret", b"0123456789abcdef", 4096)
    prefix, keys = made.rsplit("$", 1)
    stored, server = keys.split(":")
    other_stored, other_server = scram.verifier("other", b"0123456789abcdef", 4096).rsplit("$", 1)[1].split(":")
    assert scram.matches("s3cret", made)
    assert not scram.matches("s3cret", f"{prefix}${stored}:{other_server}")  # server key wrong
    assert not scram.matches("s3cret", f"{prefix}${other_stored}:{server}")  # stored key wrong
    assert not scram.matches("s3cret", made.replace("$4096:", "$4097:", 1))  # iterations are part of it
    assert scram.matches("s3cret", scram.verifier("s3cret", b"0123456789abcdef", 10))
