"""desired.build: what each environment file implies, by name, label and count."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from nornos_infra.cloud import desired
from nornos_infra.cloud.model import Desired
from tests.unit.test_spec import KEY, load_raw, load_shipped, shipped_raw

MANAGED = {"managed-by": "nornos-infra"}


def by_kind(items: list[Desired], kind: str) -> dict[str, Desired]:
    return {d.name: d for d in items if d.kind == kind}


@pytest.fixture
def dev(tmp_path: Path) -> list[Desired]:
    return desired.build(load_shipped("dev", tmp_path), tmp_path)


@pytest.fixture
def production(tmp_path: Path) -> list[Desired]:
    return desired.build(load_shipped("production", tmp_path), tmp_path)


def test_dev_counts(dev: list[Desired]) -> None:
    assert Counter(d.kind for d in dev) == {"ssh_key": 1, "network": 1, "firewall": 4, "placement_group": 5,
                                            "server": 6, "volume": 1, "load_balancer": 1}


def test_dev_server_names_and_labels(dev: list[Desired]) -> None:
    servers = by_kind(dev, "server")
    assert sorted(servers) == ["nornos-dev-agents-1", "nornos-dev-control-plane-1", "nornos-dev-postgres-1",
                               "nornos-dev-redis-1", "nornos-dev-workers-1", "nornos-dev-workers-2"]
    cp = servers["nornos-dev-control-plane-1"]
    assert cp.labels == {"nornos.io/env": "dev", "nornos.io/role": "k3s_server", "nornos.io/pool": "control-plane",
                         **MANAGED}
    assert servers["nornos-dev-agents-1"].labels["nornos.io/role"] == "k3s_agent"
    assert cp.settings == {
        "server_type": "cx23", "image": "debian-12", "location": "fsn1", "fallback_locations": ["nbg1"],
        "networks": ["nornos-dev"], "placement_group": "nornos-dev-control-plane-spread-1",
        "ssh_keys": ["nornos-dev-admin"],
    }
    assert {s.settings["server_type"] for n, s in servers.items() if "workers" in n} == {"cx33"}
    assert not any(d.protect for d in dev), "dev has no protection"


def test_every_resource_is_labelled(dev: list[Desired], production: list[Desired]) -> None:
    for items, env in ((dev, "dev"), (production, "production")):
        for d in items:
            assert d.labels["nornos.io/env"] == env
            assert d.labels["managed-by"] == "nornos-infra"
            assert "nornos.io/role" in d.labels
            assert d.name.startswith(f"nornos-{env}")
            if d.kind in ("server", "placement_group", "volume"):
                assert "nornos.io/pool" in d.labels


def test_dev_network_volume_and_lb(dev: list[Desired]) -> None:
    network = by_kind(dev, "network")["nornos-dev"]
    assert network.settings == {"ip_range": "10.0.0.0/16", "subnets": [
        {"type": "cloud", "ip_range": "10.0.1.0/24", "network_zone": "eu-central"}]}
    assert by_kind(dev, "volume")["nornos-dev-postgres-data"].settings == {"size": 50,
                                                                          "server": "nornos-dev-postgres-1"}
    lb = by_kind(dev, "load_balancer")["nornos-dev"]
    assert lb.settings["type"] == "lb11"
    assert [s["listen_port"] for s in lb.settings["services"]] == [80, 443]
    assert lb.settings["targets"] == [{"type": "label_selector", "use_private_ip": True,
                                       "selector": "nornos.io/env=dev,nornos.io/role in (k3s_agent,k3s_server),"
                                                   "nornos.io/pool notin (agents)"}]  # tainted: no Traefik


def test_dev_firewalls(dev: list[Desired]) -> None:
    firewalls = by_kind(dev, "firewall")
    assert sorted(firewalls) == ["nornos-dev-k3s-agent", "nornos-dev-k3s-server", "nornos-dev-postgres",
                                 "nornos-dev-redis"]
    ports = {name: [r["port"] for r in fw.settings["rules"]] for name, fw in firewalls.items()}
    assert ports == {"nornos-dev-k3s-agent": ["22"], "nornos-dev-k3s-server": ["22", "6443"],
                     "nornos-dev-postgres": ["22"], "nornos-dev-redis": ["22"]}
    for fw in firewalls.values():
        for rule in fw.settings["rules"]:
            assert rule["source_ips"] == ["203.0.113.0/24"], "only the admin networks, never the internet"
    assert firewalls["nornos-dev-postgres"].settings["selectors"] == ["nornos.io/env=dev,nornos.io/role=postgres"]


def test_ssh_key_comment_is_dropped(dev: list[Desired]) -> None:
    key = by_kind(dev, "ssh_key")["nornos-dev-admin"]
    assert key.settings["public_key"] == " ".join(KEY.split()[:2])


def test_production_counts(production: list[Desired]) -> None:
    servers = by_kind(production, "server")
    assert len(servers) == 12
    roles = Counter(s.labels["nornos.io/role"] for s in servers.values())
    assert roles == {"k3s_server": 3, "k3s_agent": 7, "postgres": 1, "redis": 1}
    assert roles["k3s_server"] + roles["k3s_agent"] == 10
    assert by_kind(production, "volume")["nornos-production-postgres-data"].settings["size"] == 500
    assert servers["nornos-production-postgres-1"].settings["server_type"] == "cx53"
    assert sorted(by_kind(production, "placement_group")) == [
        "nornos-production-agents-spread-1", "nornos-production-control-plane-spread-1",
        "nornos-production-postgres-spread-1", "nornos-production-redis-spread-1",
        "nornos-production-workers-spread-1"]


def test_production_protection(production: list[Desired]) -> None:
    protected = {d.kind for d in production if d.protect}
    assert protected == {"server", "volume", "network", "load_balancer"}
    assert all(d.protect for d in production if d.kind in protected)


def test_the_load_balancer_never_carries_the_kube_api(production: list[Desired]) -> None:
    """Finding 1 of issue 10: production sets kube_api: true, and a Hetzner load balancer cannot
    filter sources: a 6443 service would open the Kubernetes API to the internet. The API is on
    the control planes' public addresses instead, where the cloud firewall admits admin_cidrs
    only (docs/adr/0004-kube-api-exposure.md)."""
    lb = by_kind(production, "load_balancer")["nornos-production"]
    assert [s["listen_port"] for s in lb.settings["services"]] == [80, 443]
    assert all(s["protocol"] == "tcp" and s["health_check"]["port"] == s["listen_port"]
               for s in lb.settings["services"])
    firewalls = by_kind(production, "firewall")
    for firewall in firewalls.values():
        for rule in firewall.settings["rules"]:
            if rule["port"] in ("22", "6443"):
                assert rule["source_ips"] == ["203.0.113.0/24"], rule  # the admin networks, nothing else
    assert {r["port"] for r in firewalls["nornos-production-k3s-server"].settings["rules"]} == {"22", "6443"}


def _built(tmp_path: Path, **pools: Any) -> list[Desired]:
    raw = shipped_raw("dev")
    raw["network"]["subnet"] = "10.0.0.0/20"
    for name, change in pools.items():
        if change is None:
            raw["pools"].pop(name)
        else:
            raw["pools"][name].update(change)
    return desired.build(load_raw(raw, tmp_path), tmp_path)


def test_placement_groups_hold_ten_servers(tmp_path: Path) -> None:
    items = _built(tmp_path, workers={"count": 12})
    servers = by_kind(items, "server")
    assert servers["nornos-dev-workers-10"].settings["placement_group"] == "nornos-dev-workers-spread-1"
    assert servers["nornos-dev-workers-11"].settings["placement_group"] == "nornos-dev-workers-spread-2"
    assert {"nornos-dev-workers-spread-1", "nornos-dev-workers-spread-2"} <= set(by_kind(items, "placement_group"))


def test_empty_pool_creates_nothing(tmp_path: Path) -> None:
    items = _built(tmp_path, redis={"count": 0})
    assert not [d for d in items if d.labels.get("nornos.io/pool") == "redis"]
    assert "nornos-dev-redis" not in by_kind(items, "firewall")


def test_pool_image_overrides_environment_image(tmp_path: Path) -> None:
    items = _built(tmp_path, redis={"image": "debian-13"})
    servers = by_kind(items, "server")
    assert servers["nornos-dev-redis-1"].settings["image"] == "debian-13"
    assert servers["nornos-dev-workers-1"].settings["image"] == "debian-12"


def test_no_load_balancer_when_the_spec_has_none(tmp_path: Path) -> None:
    raw = shipped_raw("dev")
    raw["load_balancer"] = None
    items = desired.build(load_raw(raw, tmp_path), tmp_path)
    assert not by_kind(items, "load_balancer")


def test_build_is_deterministic(tmp_path: Path) -> None:
    spec = load_shipped("staging", tmp_path)
    assert desired.build(spec, tmp_path) == desired.build(spec, tmp_path)
