"""provision.py end to end against localcloud, through the real CLI (a subprocess, as people run it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from nornos_infra import host_keys
from nornos_infra.inventory import load as load_inventory
from tests.conftest import TIME_SCALE, TOKEN, LocalCloud

ROOT = Path(__file__).resolve().parents[2]
ADMIN_IP = "198.51.100.1"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ admin@nornos"
MUTATING = ("POST", "PUT", "DELETE")
# provision.py's write-permission check before applying: a create with an empty body, which
# the API refuses (invalid_input; token_readonly for a read-only token) and which creates nothing
PERMISSION_PROBE = ("POST", "/ssh_keys")


def is_probe(entry: dict[str, Any]) -> bool:
    return (entry["method"], entry["path"]) == PERMISSION_PROBE and entry["code"] in ("invalid_input",
                                                                                      "token_readonly")


class Provisioner:
    def __init__(self, lc: LocalCloud, tmp: Path) -> None:
        self.lc = lc
        self.env_dir = tmp / "environments"
        self.inv_dir = tmp / "inventories"
        self.env_dir.mkdir()

    def write_env(self, name: str, **changes: Any) -> dict[str, Any]:
        source = name if (ROOT / "environments" / f"{name}.yaml").exists() else "dev"
        data = yaml.safe_load((ROOT / "environments" / f"{source}.yaml").read_text())
        data["name"] = name
        data["ssh_keys"] = [{"name": "admin", "public_key": KEY}]
        data["admin_cidrs"] = [f"{ADMIN_IP}/32"]  # the shipped files hold a placeholder: this machine instead
        data["admin_cidrs"] = [f"{ADMIN_IP}/32"]  # localcloud's admin address, as its overrides give it
        for key, value in changes.items():
            data[key] = value
        (self.env_dir / f"{name}.yaml").write_text(yaml.safe_dump(data))
        return data

    def run(self, *args: str, token: str = TOKEN, timeout: float = 300,
            admin_ip: str | None = ADMIN_IP) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HCLOUD_ENDPOINT": self.lc.endpoint, "HCLOUD_TOKEN": token,
               "NORNOS_POLL_INTERVAL": "0.05", "COLUMNS": "200"}
        cmd = [sys.executable, str(ROOT / "provision.py"), *args, "--env-dir", str(self.env_dir),
               "--inventory-dir", str(self.inv_dir)]
        if "--admin-ip" not in args and admin_ip is not None:
            cmd += ["--admin-ip", admin_ip]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)

    def clear_log(self) -> None:
        self.lc.side("DELETE", "requests")

    def mutations(self) -> list[dict[str, Any]]:
        """The writes: mutating requests except the permission probe (refused, creates nothing)."""
        return [r for r in self.lc.requests_log() if r["method"] in MUTATING and not is_probe(r)]

    def resources(self, kind: str, env: str = "dev") -> list[dict[str, Any]]:
        import requests

        path = {"ssh_key": "ssh_keys", "network": "networks", "firewall": "firewalls", "server": "servers",
                "placement_group": "placement_groups", "volume": "volumes", "load_balancer": "load_balancers"}[kind]
        resp = requests.get(f"{self.lc.endpoint}/{path}", params={"label_selector": f"nornos.io/env={env}",
                                                                  "per_page": 50},
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        resp.raise_for_status()
        return list(resp.json()[path])


@pytest.fixture
def prov(localcloud: LocalCloud, tmp_path: Path) -> Provisioner:
    localcloud.reset()
    return Provisioner(localcloud, tmp_path)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def test_dev_from_nothing_then_nothing_to_do(prov: Provisioner) -> None:
    prov.write_env("dev")
    dry = ok(prov.run("dev", "--dry-run"))
    assert "+ server nornos-dev-control-plane-1" in dry.stdout.replace("  ", " ")
    assert "Monthly cost:" in dry.stdout
    assert prov.resources("server") == []
    ok(prov.run("dev"))
    servers = {s["name"]: s for s in prov.resources("server")}
    assert sorted(servers) == ["nornos-dev-agents-1", "nornos-dev-control-plane-1", "nornos-dev-postgres-1",
                               "nornos-dev-redis-1", "nornos-dev-workers-1", "nornos-dev-workers-2"]
    assert all(s["status"] == "running" and s["private_net"] for s in servers.values())
    volume, = prov.resources("volume")
    assert volume["size"] == 50 and volume["server"] == servers["nornos-dev-postgres-1"]["id"]
    lb, = prov.resources("load_balancer")
    assert lb["private_net"] and {s["listen_port"] for s in lb["services"]} == {80, 443}
    # each role's firewall applied by its selector alone, and reaching exactly that role's servers
    firewalls = {f["name"]: f for f in prov.resources("firewall")}
    roles = {"k3s-server": "k3s_server", "k3s-agent": "k3s_agent", "postgres": "postgres", "redis": "redis"}
    assert sorted(firewalls) == sorted(f"nornos-dev-{r}" for r in roles)
    for suffix, role in roles.items():
        applied, = firewalls[f"nornos-dev-{suffix}"]["applied_to"]
        assert applied["type"] == "label_selector"
        assert applied["label_selector"]["selector"] == f"nornos.io/env=dev,nornos.io/role={role}"
        reached = sorted(r["server"]["id"] for r in applied["applied_to_resources"])
        assert reached and reached == sorted(srv["id"] for srv in servers.values()
                                             if srv["labels"]["nornos.io/role"] == role)
    inventory = (prov.inv_dir / "dev.py").read_text()
    assert "nornos-dev-postgres-1" in inventory and "k3s_servers" in inventory
    # the addresses the deploys use are the API's own: each server's public IPv4, the LB's
    loaded = load_inventory(prov.inv_dir / "dev.py")
    for host in loaded.hosts():
        public = servers[host.name]["public_net"]["ipv4"]["ip"]
        assert (host.data["public_ipv4"], host.data["ssh_hostname"]) == (public, public)
        assert host.data["private_ip"] == servers[host.name]["private_net"][0]["ip"]
    assert loaded.shared["lb_public_ipv4"] == lb["public_net"]["ipv4"]["ip"]

    prov.clear_log()
    again = ok(prov.run("dev"))
    assert "no changes" in again.stdout
    assert prov.mutations() == []
    assert len(prov.lc.requests_log()) <= 12
    assert (prov.inv_dir / "dev.py").read_text() == inventory


def test_scale_resize_and_pool_removal(prov: Provisioner) -> None:
    data = prov.write_env("dev")
    ok(prov.run("dev"))
    data["pools"]["workers"]["count"] = 3
    data["pools"]["redis"]["server_type"] = "cx33"
    del data["pools"]["agents"]
    prov.write_env("dev", pools=data["pools"])
    plan = prov.run("dev", "--dry-run", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stderr
    assert "server type cx23 -> cx33" in plan.stdout
    ok(prov.run("dev", "--yes"))
    servers = {s["name"]: s for s in prov.resources("server")}
    assert "nornos-dev-workers-3" in servers and "nornos-dev-agents-1" not in servers
    assert servers["nornos-dev-redis-1"]["server_type"]["name"] == "cx33"
    assert servers["nornos-dev-redis-1"]["status"] == "running"
    assert not any(p["name"].startswith("nornos-dev-agents") for p in prov.resources("placement_group"))

    data["pools"]["workers"]["count"] = 1
    prov.write_env("dev", pools=data["pools"])
    refused = prov.run("dev")  # deleting needs confirmation; no terminal -> refused, nothing changed
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert len([s for s in prov.resources("server") if "workers" in s["name"]]) == 3
    ok(prov.run("dev", "--yes"))
    workers = sorted(s["name"] for s in prov.resources("server") if "workers" in s["name"])
    assert workers == ["nornos-dev-workers-1"]


def test_drift_is_reported_and_repaired(prov: Provisioner) -> None:
    import requests

    prov.write_env("dev")
    ok(prov.run("dev"))
    fw = next(f for f in prov.resources("firewall") if f["name"] == "nornos-dev-postgres")
    intended = fw["rules"]
    assert [(r["direction"], r["protocol"], r["port"]) for r in intended] == [("in", "tcp", "22")]
    rules = fw["rules"] + [{"direction": "in", "protocol": "tcp", "port": "5432", "source_ips": ["0.0.0.0/0"],
                            "destination_ips": [], "description": "oops"}]
    requests.post(f"{prov.lc.endpoint}/firewalls/{fw['id']}/actions/set_rules", json={"rules": rules},
                  headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).raise_for_status()
    check = prov.run("dev", "--check")
    assert check.returncode == 2 and "rules differ" in check.stdout
    ok(prov.run("dev"))
    fw = next(f for f in prov.resources("firewall") if f["name"] == "nornos-dev-postgres")
    assert fw["rules"] == intended  # the stray rule gone and the intended one still there (not "no rules")
    assert prov.run("dev", "--check").returncode == 0


def test_a_server_also_on_someone_elses_network_keeps_its_address_on_ours(prov: Provisioner) -> None:
    import requests

    prov.write_env("dev")
    ok(prov.run("dev"))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    foreign = requests.post(f"{prov.lc.endpoint}/networks", headers=headers, timeout=10, json={
        "name": "someone-elses-net", "ip_range": "10.9.0.0/16",
        "subnets": [{"type": "cloud", "network_zone": "eu-central", "ip_range": "10.9.1.0/24"}]})
    foreign.raise_for_status()
    worker = next(s for s in prov.resources("server") if s["name"] == "nornos-dev-workers-1")
    requests.post(f"{prov.lc.endpoint}/servers/{worker['id']}/actions/attach_to_network", headers=headers, timeout=10,
                  json={"network": foreign.json()["network"]["id"]}).raise_for_status()
    deadline = time.monotonic() + 30
    while len(next(s for s in prov.resources("server") if s["id"] == worker["id"])["private_net"]) < 2:
        assert time.monotonic() < deadline, "the attach action never finished"
        time.sleep(0.1)
    ours = next(n["ip"] for n in worker["private_net"])
    ok(prov.run("dev"))
    host = load_inventory(prov.inv_dir / "dev.py").host("nornos-dev-workers-1")
    assert host.data["private_ip"] == ours


def test_destroy_removes_everything_including_cluster_made_resources(prov: Provisioner) -> None:
    import requests

    prov.write_env("dev")
    made = ok(prov.run("dev"))
    # what is deleted costs what was made: each of our resources counted once
    built = re.search(r"Monthly cost: €0\.00 -> (€[\d.]+)", made.stdout)
    assert built is not None
    assert f"Monthly cost: {built.group(1)} -> €0.00" in ok(prov.run("dev", "--destroy", "--dry-run")).stdout
    network = prov.resources("network")[0]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    # what the cloud controller would create for a Service of type LoadBalancer: its own labels
    requests.post(f"{prov.lc.endpoint}/load_balancers", headers=headers, timeout=10, json={
        "name": "a1b2c3", "load_balancer_type": "lb11", "location": "fsn1", "network": network["id"],
        "labels": {"hcloud-ccm/service-uid": "1234"}}).raise_for_status()
    # what the CSI driver would create for a PersistentVolumeClaim: attached to one of our servers
    worker = next(s for s in prov.resources("server") if "workers" in s["name"])
    requests.post(f"{prov.lc.endpoint}/volumes", headers=headers, timeout=10, json={
        "name": "pvc-1234", "size": 10, "server": worker["id"], "labels": {"managed-by": "csi-driver"}},
    ).raise_for_status()
    # someone else's, in the same project: not on our network, not on our servers; never touched
    requests.post(f"{prov.lc.endpoint}/load_balancers", headers=headers, timeout=10, json={
        "name": "someone-else", "load_balancer_type": "lb11", "location": "fsn1"}).raise_for_status()
    requests.post(f"{prov.lc.endpoint}/volumes", headers=headers, timeout=10, json={
        "name": "someone-elses-data", "size": 10, "location": "fsn1"}).raise_for_status()
    # each of ours once (never counted again among the cluster's leftovers), the cluster's, nobody else's
    dry = ok(prov.run("dev", "--destroy", "--dry-run")).stdout
    deleted = re.findall(r"^ +- (ssh key|network|firewall|placement group|server|volume|load balancer) (\S+)",
                         dry, re.M)
    assert len(deleted) == len(set(deleted)) == 21 and "Plan: 21 to delete (0 unchanged)." in dry
    assert {("load balancer", "a1b2c3"), ("load balancer", "nornos-dev"), ("volume", "pvc-1234"),
            ("volume", "nornos-dev-postgres-data")} <= set(deleted)
    assert not {name for _, name in deleted} & {"someone-else", "someone-elses-data"}
    ok(prov.run("dev", "--destroy", "--yes"))
    for kind in ("server", "volume", "network", "firewall", "placement_group", "ssh_key", "load_balancer"):
        assert prov.resources(kind) == [], kind
    lbs = requests.get(f"{prov.lc.endpoint}/load_balancers", headers=headers, timeout=10).json()["load_balancers"]
    assert [lb["name"] for lb in lbs] == ["someone-else"]
    volumes = requests.get(f"{prov.lc.endpoint}/volumes", headers=headers, timeout=10).json()["volumes"]
    assert [v["name"] for v in volumes] == ["someone-elses-data"]
    assert not (prov.inv_dir / "dev.py").exists()


def test_a_failed_delete_stops_the_later_waves(prov: Provisioner) -> None:
    """Deletes go in waves (load balancers and volumes, then servers, then what servers use): when
    one fails, nothing of a later wave is deleted, so no server loses its volume half-way."""
    prov.write_env("dev")
    ok(prov.run("dev"))
    prov.lc.side("PUT", "faults", {"errors": [{"method": "DELETE", "path": "/volumes/*", "code": "forbidden",
                                               "times": 1}]})
    failed = prov.run("dev", "--destroy", "--yes")
    prov.lc.side("PUT", "faults", {})
    assert failed.returncode == 1 and "failed: delete volume nornos-dev-postgres-data" in failed.stderr
    assert len(prov.resources("server")) == 6 and len(prov.resources("network")) == 1
    assert len(prov.resources("volume")) == 1
    assert not [line for line in failed.stderr.splitlines() if "deleting server" in line or "deleting network" in line]
    ok(prov.run("dev", "--destroy", "--yes"))
    for kind in ("server", "volume", "network", "firewall", "placement_group", "ssh_key", "load_balancer"):
        assert prov.resources(kind) == [], kind


def test_production_is_protected(prov: Provisioner) -> None:
    prov.write_env("production")
    ok(prov.run("production"))
    servers = prov.resources("server", "production")
    assert len(servers) == 12
    assert all(s["protection"] == {"delete": True, "rebuild": True} for s in servers)
    # and everything else that can be protected: the volume, the network, the load balancer
    for kind in ("volume", "network", "load_balancer"):
        made = prov.resources(kind, "production")
        assert made and all(r["protection"] == {"delete": True} for r in made), kind
    prov.clear_log()
    refused = prov.run("production", "--destroy", "--yes")
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert prov.mutations() == []
    ok(prov.run("production", "--destroy", "--yes", "--force"))
    assert prov.resources("server", "production") == []


@pytest.mark.parametrize("change, message", [
    ({"location": "ash"}, "outside the EU"),
    ({"pools": {"cp": {"role": "k3s_server", "server_type": "cx23", "count": 2}}}, "odd number"),
    ({"pools": {"cp": {"role": "k3s_server", "server_type": "cx99", "count": 1}}}, "cx99"),
    ({"colour": "blue"}, "unknown key"),
    ({"admin_cidrs": []}, "admin_cidrs"),
])
def test_bad_input_is_one_line_and_changes_nothing(prov: Provisioner, change: dict[str, Any], message: str) -> None:
    prov.write_env("dev", **change)
    prov.clear_log()
    result = prov.run("dev", "--yes")
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert prov.mutations() == []


def test_bad_token_and_lockout(prov: Provisioner) -> None:
    prov.write_env("dev")
    bad = prov.run("dev", token="wrong")
    assert bad.returncode == 1 and "token" in bad.stderr and "Traceback" not in bad.stderr
    locked_out = prov.run("dev", "--admin-ip", "192.0.2.77")
    assert locked_out.returncode == 1 and "admin_cidrs" in locked_out.stderr
    # without --admin-ip, localcloud tells which address this machine has on its public side
    prov.write_env("dev", admin_cidrs=["203.0.113.0/24"])
    found = prov.run("dev", admin_ip=None)
    assert found.returncode == 1 and "198.51.100.1" in found.stderr and "--allow-lockout" in found.stderr
    assert prov.mutations() == []
    prov.write_env("dev")
    assert prov.run("dev", "--dry-run", admin_ip=None).returncode == 0


def _assert_converged(prov: Provisioner) -> None:
    import requests

    headers = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("servers", "volumes", "load_balancers", "networks", "firewalls", "placement_groups", "ssh_keys"):
        items = requests.get(f"{prov.lc.endpoint}/{path}", params={"per_page": 50}, headers=headers,
                             timeout=10).json()[path]
        names = [i["name"] for i in items]
        assert len(names) == len(set(names)), f"duplicate {path}: {names}"
        assert all(i["labels"].get("nornos.io/env") == "dev" for i in items), f"unlabelled {path}"
    assert len(prov.resources("server")) == 6 and len(prov.resources("volume")) == 1
    # every server knows the host key it was created with, however often creates were interrupted
    assert all(host_keys.from_label(s["labels"].get(host_keys.LABEL)) for s in prov.resources("server"))
    prov.clear_log()
    assert "no changes" in ok(prov.run("dev")).stdout
    assert prov.mutations() == []


def test_killed_at_random_points_converges(prov: Provisioner) -> None:
    import random
    import signal
    import time

    rng = random.Random(20261128)
    prov.write_env("dev")
    env = {**os.environ, "HCLOUD_ENDPOINT": prov.lc.endpoint, "HCLOUD_TOKEN": TOKEN,
           "NORNOS_POLL_INTERVAL": "0.05"}
    cmd = [sys.executable, str(ROOT / "provision.py"), "dev", "--yes", "--admin-ip", ADMIN_IP,
           "--env-dir", str(prov.env_dir), "--inventory-dir", str(prov.inv_dir)]
    # slower actions, so that kills land inside creates, waits and deletes alike
    prov.lc.side("PUT", "config", {"time_scale": 4.0})
    kills = 0
    for attempt in range(8):
        extra = ["--destroy"] if attempt % 3 == 2 else []  # interrupt tear-downs too
        prov.clear_log()
        # kill after a random number of mutating requests, not after a wall-clock delay: the
        # point of interruption must not depend on how fast this machine happens to be
        kill_after = rng.randint(1, 6)
        proc = subprocess.Popen(cmd + extra, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=ROOT)
        while proc.poll() is None and len(prov.mutations()) < kill_after:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))  # land inside waits as well as between requests
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    print(f"{kills} of 8 runs killed")
    assert kills >= 5, f"only {kills} of 8 runs were interrupted"
    prov.lc.side("PUT", "config", {"time_scale": float(TIME_SCALE)})
    ok(prov.run("dev", "--yes"))
    _assert_converged(prov)


def test_runs_through_injected_api_faults(prov: Provisioner) -> None:
    prov.write_env("dev")
    prov.lc.side("PUT", "faults", {
        "errors": [
            {"method": "GET", "path": "/servers", "code": "rate_limit_exceeded", "times": 1},
            {"method": "POST", "path": "/servers", "code": "unavailable", "times": 2},
            {"method": "POST", "path": "/networks", "code": "conflict", "times": 2},
            {"method": "POST", "path": "/servers/*/actions/*", "code": "locked", "times": 1},
            {"method": "POST", "path": "/volumes", "code": "server_error", "times": 1},
        ],
    })
    ok(prov.run("dev"))
    prov.lc.side("PUT", "faults", {})
    _assert_converged(prov)


def test_creates_whose_reply_was_lost_are_adopted(prov: Provisioner) -> None:
    """The API made the resource but the reply never came back (the connection dropped after the
    commit): the retried create is a uniqueness_error, and provision.py adopts what was made, once."""
    prov.write_env("dev")
    prov.lc.side("PUT", "faults", {"drops": [
        {"method": "POST", "path": path, "times": 1, "after": True}
        # (not POST /ssh_keys: the write-permission probe sends one first, and a lost probe is a failed run)
        for path in ("/servers", "/volumes", "/networks", "/firewalls", "/load_balancers")]})
    done = ok(prov.run("dev"))
    prov.lc.side("PUT", "faults", {})
    for kind, name in (("server", "nornos-dev-"), ("volume", "nornos-dev-"), ("network", "nornos-dev"),
                       ("firewall", "nornos-dev-"), ("load_balancer", "nornos-dev")):
        assert re.search(rf"adopted existing {kind} {name}\S* \(id \d+\)", done.stdout + done.stderr), kind
    _assert_converged(prov)


def test_failed_action_stops_cleanly_and_rerun_converges(prov: Provisioner) -> None:
    prov.write_env("dev")
    prov.lc.side("PUT", "faults", {"actions": {"create_volume": 1.0}})
    failed = prov.run("dev")
    assert failed.returncode == 1 and "create_volume failed" in failed.stderr and "Traceback" not in failed.stderr
    # said where it happened, as it happened, then summed up
    assert ("failed: create volume nornos-dev-postgres-data: create_volume failed: create_volume failed (injected "
            "fault) (action_failed)") in failed.stderr
    assert failed.stderr.rstrip().endswith("error: 1 change(s) failed, 18 done; run again to converge")
    prov.lc.side("PUT", "faults", {})
    ok(prov.run("dev", "--yes"))
    _assert_converged(prov)


def test_unavailable_type_falls_back_to_another_eu_location(prov: Provisioner) -> None:
    prov.write_env("dev")
    prov.lc.side("PUT", "faults", {"unavailable": [{"server_type": "cx33", "location": "fsn1"}]})
    ok(prov.run("dev"))
    locations = {s["name"]: s["location"]["name"] for s in prov.resources("server")}
    assert locations["nornos-dev-workers-1"] == "nbg1" and locations["nornos-dev-redis-1"] == "fsn1"
    volume, = prov.resources("volume")
    assert volume["location"]["name"] == locations["nornos-dev-postgres-1"] == "nbg1"
    prov.lc.side("PUT", "faults", {})
    prov.clear_log()
    assert "no changes" in ok(prov.run("dev")).stdout
