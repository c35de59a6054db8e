"""Every update and drift-repair path of provision.py, one setting at a time.

Each case makes the dev environment, changes one thing (in the environment file, or behind
the tool's back through the API), and then checks three things: the exact plan line, the
exact mutating API calls the apply makes (localcloud's request log), and that a second run
says "no changes" and sends nothing. The apply runs through the real CLI, as people run it.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.api.test_provision import ADMIN_IP, KEY, Provisioner, ok
from tests.conftest import TOKEN, LocalCloud

PG_SELECTOR = "nornos.io/env=dev,nornos.io/role=postgres"
# The environment these cases start from, written out here: environments/dev.yaml changes with the
# product, these cases must not (each one names the exact lines and calls a change makes).
DEV: dict[str, Any] = {
    "name": "dev", "patient_data": True, "location": "fsn1", "fallback_locations": ["nbg1"], "image": "debian-12",
    "protection": False, "admin_cidrs": [ADMIN_IP + "/32"],
    "network": {"ip_range": "10.0.0.0/16", "subnet": "10.0.1.0/24", "zone": "eu-central"},
    "ssh_keys": [{"name": "admin", "public_key": KEY}],
    "pools": {
        "control-plane": {"role": "k3s_server", "server_type": "cx23", "count": 1},
        "workers": {"role": "k3s_agent", "server_type": "cx33", "count": 2},
        "agents": {"role": "k3s_agent", "server_type": "cx33", "count": 1,
                   "taints": ["nornos.io/agents=true:NoSchedule"]},
        "postgres": {"role": "postgres", "server_type": "cx33", "count": 1, "volume_gb": 50},
        "redis": {"role": "redis", "server_type": "cx23", "count": 1},
    },
    "load_balancer": {"type": "lb11", "services": [80, 443], "kube_api": False},
}
SYMBOLS = ("+ ", "~ ", "-/+ ", "- ")


def api(prov: Provisioner, method: str, path: str, body: Any = None) -> dict[str, Any]:
    """A direct API call (someone changing the cloud by hand); waits for the action it starts."""
    resp = requests.request(method, prov.lc.endpoint + path, json=body, timeout=10,
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
    data: dict[str, Any] = resp.json() if resp.content else {}
    actions = [data["action"]] if data.get("action") else list(data.get("actions") or [])
    for action in actions:
        wait_action(prov, action["id"])
    return data


def wait_action(prov: Provisioner, ident: int) -> None:
    import time

    for _ in range(400):
        resp = requests.get(f"{prov.lc.endpoint}/actions/{ident}", headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=10)
        status = resp.json()["action"]["status"]
        if status != "running":
            assert status == "success", resp.json()
            return
        time.sleep(0.02)
    raise AssertionError(f"action {ident} still running")


def write_env(prov: Provisioner, **changes: Any) -> dict[str, Any]:
    """environments/dev.yaml for these cases: DEV with ``changes`` on top (a fresh copy each time)."""
    data = {**copy.deepcopy(DEV), **copy.deepcopy(changes)}
    (prov.env_dir / "dev.yaml").write_text(yaml.safe_dump(data))
    return data


def plan_lines(stdout: str) -> list[str]:
    """The change lines of a printed plan, whitespace normalised."""
    return [" ".join(line.split()) for line in stdout.splitlines() if line.strip().startswith(SYMBOLS)]


def one(prov: Provisioner, kind: str, name: str) -> dict[str, Any]:
    return next(r for r in prov.resources(kind) if r["name"] == name)


def calls(prov: Provisioner) -> Counter[tuple[str, str]]:
    """The mutating requests since the log was cleared, as (method, path)."""
    return Counter((r["method"], r["path"]) for r in prov.mutations())


def plan_apply_converge(prov: Provisioner, lines: list[str], expected: list[tuple[str, str]],
                        *args: str) -> list[dict[str, Any]]:
    """The dry-run shows exactly ``lines``; the apply sends exactly ``expected``; then nothing is left to do.
    Returns the apply's mutating requests in order."""
    dry = prov.run("dev", "--dry-run", "--detailed-exitcode")
    assert dry.returncode == 2, f"{dry.stdout}\n{dry.stderr}"
    assert plan_lines(dry.stdout) == lines, dry.stdout
    prov.clear_log()
    ok(prov.run("dev", *args))
    sent = prov.mutations()
    assert calls(prov) == Counter(expected), [(r["method"], r["path"]) for r in sent]
    assert all(r["status"] < 300 for r in sent), sent
    prov.clear_log()
    again = ok(prov.run("dev"))
    assert "Plan: no changes" in again.stdout, again.stdout
    assert prov.mutations() == []
    return sent


@pytest.fixture
def prov(localcloud: LocalCloud, tmp_path: Path) -> Provisioner:
    localcloud.reset()
    return Provisioner(localcloud, tmp_path)


@pytest.fixture
def dev(prov: Provisioner) -> dict[str, Any]:
    """The dev environment, made; returns its environment file's data to change."""
    data = write_env(prov)
    ok(prov.run("dev"))
    return data


# -- firewalls ---------------------------------------------------------------------------------------
def test_firewall_detached_from_its_servers_is_applied_again(prov: Provisioner, dev: dict[str, Any]) -> None:
    fw = one(prov, "firewall", "nornos-dev-postgres")
    api(prov, "POST", f"/firewalls/{fw['id']}/actions/remove_from_resources",
        {"remove_from": [{"type": "label_selector", "label_selector": {"selector": PG_SELECTOR}}]})
    assert one(prov, "firewall", "nornos-dev-postgres")["applied_to"] == []
    plan_apply_converge(prov, [f"~ firewall nornos-dev-postgres apply to {PG_SELECTOR}"],
                        [("POST", f"/firewalls/{fw['id']}/actions/apply_to_resources")])
    applied, = one(prov, "firewall", "nornos-dev-postgres")["applied_to"]
    postgres = one(prov, "server", "nornos-dev-postgres-1")
    assert applied["label_selector"]["selector"] == PG_SELECTOR
    assert applied["applied_to_resources"] == [{"type": "server", "server": {"id": postgres["id"]}}]


def test_firewall_applied_to_another_server_directly_is_reduced_to_its_selector(prov: Provisioner,
                                                                                  dev: dict[str, Any]) -> None:
    fw = one(prov, "firewall", "nornos-dev-redis")
    postgres = one(prov, "server", "nornos-dev-postgres-1")
    api(prov, "POST", f"/firewalls/{fw['id']}/actions/apply_to_resources",
        {"apply_to": [{"type": "server", "server": {"id": postgres["id"]}}]})
    plan_apply_converge(
        prov, [f"~ firewall nornos-dev-redis remove server {postgres['id']} (applied only by our selectors)"],
        [("POST", f"/firewalls/{fw['id']}/actions/remove_from_resources")])
    applied = one(prov, "firewall", "nornos-dev-redis")["applied_to"]
    assert [a["type"] for a in applied] == ["label_selector"]


HELD_NOTE = ("note: firewall nornos-dev-redis is also applied directly to server nornos-dev-redis-1, which its "
             "selector reaches: the API keeps that entry while the selector holds it "
             "(firewall_managed_by_label_selector); it filters nothing more and is removed once the selector no "
             "longer reaches the server")


def test_firewall_applied_directly_to_a_server_its_selector_matches_converges(prov: Provisioner,
                                                                              dev: dict[str, Any]) -> None:
    """Hetzner refuses to remove such an entry (spec of remove_from_resources): the plan notes it
    and changes nothing, instead of failing on it every run; the selector is never dropped to free
    it (that would leave the server unfiltered)."""
    fw = one(prov, "firewall", "nornos-dev-redis")
    redis = one(prov, "server", "nornos-dev-redis-1")
    api(prov, "POST", f"/firewalls/{fw['id']}/actions/apply_to_resources",
        {"apply_to": [{"type": "server", "server": {"id": redis["id"]}}]})
    prov.clear_log()
    for _ in range(2):
        run = ok(prov.run("dev"))
        assert "Plan: no changes" in run.stdout, run.stdout
        assert [" ".join(line.split()) for line in run.stdout.splitlines() if "note:" in line] == [HELD_NOTE]
    assert prov.mutations() == []
    assert sorted(a["type"] for a in one(prov, "firewall", "nornos-dev-redis")["applied_to"]) == [
        "label_selector", "server"]


def test_firewall_direct_entry_that_a_reapplied_selector_holds_is_kept_not_failed(prov: Provisioner,
                                                                                  dev: dict[str, Any]) -> None:
    """Selector removed by hand and the server applied directly instead: the apply puts the selector
    back first (the server is never unfiltered), then finds the direct entry held by it and keeps it."""
    fw = one(prov, "firewall", "nornos-dev-redis")
    redis = one(prov, "server", "nornos-dev-redis-1")
    selector = "nornos.io/env=dev,nornos.io/role=redis"
    api(prov, "POST", f"/firewalls/{fw['id']}/actions/apply_to_resources",
        {"apply_to": [{"type": "server", "server": {"id": redis["id"]}}]})
    api(prov, "POST", f"/firewalls/{fw['id']}/actions/remove_from_resources",
        {"remove_from": [{"type": "label_selector", "label_selector": {"selector": selector}}]})
    dry = prov.run("dev", "--dry-run")
    assert plan_lines(dry.stdout) == [f"~ firewall nornos-dev-redis apply to {selector}; remove server "
                                      f"{redis['id']} (applied only by our selectors)"], dry.stdout
    prov.clear_log()
    ok(prov.run("dev"))
    sent = prov.mutations()
    assert [(r["method"], r["path"], r["status"]) for r in sent] == [
        ("POST", f"/firewalls/{fw['id']}/actions/apply_to_resources", 201),
        ("POST", f"/firewalls/{fw['id']}/actions/remove_from_resources", 422)]
    prov.clear_log()
    again = ok(prov.run("dev"))
    assert "Plan: no changes" in again.stdout and HELD_NOTE in " ".join(again.stdout.split()), again.stdout
    assert prov.mutations() == []


def test_firewall_with_a_held_direct_entry_is_deleted(prov: Provisioner, dev: dict[str, Any]) -> None:
    """Removing the redis pool deletes its firewall: the selector goes first, then the direct entry."""
    fw = one(prov, "firewall", "nornos-dev-redis")
    redis = one(prov, "server", "nornos-dev-redis-1")
    api(prov, "POST", f"/firewalls/{fw['id']}/actions/apply_to_resources",
        {"apply_to": [{"type": "server", "server": {"id": redis["id"]}}]})
    pools = {k: v for k, v in dev["pools"].items() if k != "redis"}
    write_env(prov, pools=pools)
    prov.clear_log()
    ok(prov.run("dev", "--yes"))
    assert "nornos-dev-redis" not in {f["name"] for f in prov.resources("firewall")}
    removals = [r for r in prov.mutations() if r["path"] == f"/firewalls/{fw['id']}/actions/remove_from_resources"]
    # the selector, then the direct entry: already gone with its server (deleted before the firewall)
    assert [r["status"] for r in removals] == [201, 404]
    prov.clear_log()
    assert "Plan: no changes" in ok(prov.run("dev")).stdout
    assert prov.mutations() == []


def test_firewall_rules_changed_by_hand_are_set_back(prov: Provisioner, dev: dict[str, Any]) -> None:
    fw = one(prov, "firewall", "nornos-dev-postgres")
    before = fw["rules"]
    assert [(r["port"], r["source_ips"]) for r in before] == [("22", ["198.51.100.1/32"])]
    extra = {"direction": "in", "protocol": "tcp", "port": "5432", "source_ips": ["0.0.0.0/0"],
             "destination_ips": [], "description": "oops"}
    api(prov, "POST", f"/firewalls/{fw['id']}/actions/set_rules", {"rules": [*before, extra]})
    plan_apply_converge(prov, ["~ firewall nornos-dev-postgres rules differ"],
                        [("POST", f"/firewalls/{fw['id']}/actions/set_rules")])
    assert one(prov, "firewall", "nornos-dev-postgres")["rules"] == before  # exactly the rules, not none


# -- volumes -----------------------------------------------------------------------------------------
def test_volume_grows_in_place(prov: Provisioner, dev: dict[str, Any]) -> None:
    volume = one(prov, "volume", "nornos-dev-postgres-data")
    dev["pools"]["postgres"]["volume_gb"] = 60
    write_env(prov, pools=dev["pools"])
    plan_apply_converge(prov, ["~ volume nornos-dev-postgres-data size 50 GB -> 60 GB (grow)"],
                        [("POST", f"/volumes/{volume['id']}/actions/resize")])
    after = one(prov, "volume", "nornos-dev-postgres-data")
    assert (after["id"], after["size"], after["server"]) == (volume["id"], 60, volume["server"])


def test_volume_never_shrinks(prov: Provisioner, dev: dict[str, Any]) -> None:
    dev["pools"]["postgres"]["volume_gb"] = 40
    write_env(prov, pools=dev["pools"])
    prov.clear_log()
    result = prov.run("dev", "--yes")
    assert result.returncode == 1
    assert ("volume nornos-dev-postgres-data: 50 GB cannot shrink to 40 GB (volumes only grow); restore the size "
            "in the environment file") in " ".join(result.stderr.split())
    assert prov.mutations() == []
    assert one(prov, "volume", "nornos-dev-postgres-data")["size"] == 50


def test_detached_volume_is_attached_again(prov: Provisioner, dev: dict[str, Any]) -> None:
    volume = one(prov, "volume", "nornos-dev-postgres-data")
    api(prov, "POST", f"/volumes/{volume['id']}/actions/detach")
    plan_apply_converge(prov, ["~ volume nornos-dev-postgres-data attach to nornos-dev-postgres-1"],
                        [("POST", f"/volumes/{volume['id']}/actions/attach")])
    assert one(prov, "volume", "nornos-dev-postgres-data")["server"] == volume["server"]


def test_volume_on_another_server_moves_back(prov: Provisioner, dev: dict[str, Any]) -> None:
    volume = one(prov, "volume", "nornos-dev-postgres-data")
    redis = one(prov, "server", "nornos-dev-redis-1")
    api(prov, "POST", f"/volumes/{volume['id']}/actions/detach")
    api(prov, "POST", f"/volumes/{volume['id']}/actions/attach", {"server": redis["id"], "automount": False})
    sent = plan_apply_converge(
        prov, ["~ volume nornos-dev-postgres-data detach from nornos-dev-redis-1; attach to nornos-dev-postgres-1"],
        [("POST", f"/volumes/{volume['id']}/actions/detach"), ("POST", f"/volumes/{volume['id']}/actions/attach")])
    assert [r["path"].rsplit("/", 1)[1] for r in sent] == ["detach", "attach"]
    assert one(prov, "volume", "nornos-dev-postgres-data")["server"] == volume["server"]


# -- the network -------------------------------------------------------------------------------------
def test_network_range_grows_in_place(prov: Provisioner, dev: dict[str, Any]) -> None:
    network = one(prov, "network", "nornos-dev")
    write_env(prov, network={**dev["network"], "ip_range": "10.0.0.0/15"})
    plan_apply_converge(prov, ["~ network nornos-dev ip_range 10.0.0.0/16 -> 10.0.0.0/15 (grow)"],
                        [("POST", f"/networks/{network['id']}/actions/change_ip_range")])
    after = one(prov, "network", "nornos-dev")
    assert (after["id"], after["ip_range"]) == (network["id"], "10.0.0.0/15")
    assert len(after["servers"]) == 6


def test_network_range_that_shrinks_or_moves_is_a_replace_never_a_grow(prov: Provisioner,
                                                                       dev: dict[str, Any]) -> None:
    # same start but smaller; same size elsewhere (its subnet moved along)
    for ip_range, subnet in (("10.0.0.0/17", "10.0.1.0/24"), ("10.1.0.0/16", "10.1.1.0/24")):
        write_env(prov, network={**dev["network"], "ip_range": ip_range, "subnet": subnet})
        dry = prov.run("dev", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        network_lines = [line for line in plan_lines(dry.stdout) if " network nornos-dev " in line]
        assert network_lines == [f"-/+ network nornos-dev ip_range 10.0.0.0/16 -> {ip_range} cannot be changed "
                                 "in place"], dry.stdout


def test_network_subnet_added_by_hand_is_removed(prov: Provisioner, dev: dict[str, Any]) -> None:
    network = one(prov, "network", "nornos-dev")
    api(prov, "POST", f"/networks/{network['id']}/actions/add_subnet",
        {"type": "cloud", "ip_range": "10.0.9.0/24", "network_zone": "eu-central"})
    plan_apply_converge(prov, ["~ network nornos-dev remove subnet 10.0.9.0/24"],
                        [("POST", f"/networks/{network['id']}/actions/delete_subnet")])
    assert [s["ip_range"] for s in one(prov, "network", "nornos-dev")["subnets"]] == ["10.0.1.0/24"]


def test_network_without_its_subnet_gets_it_before_servers_join(prov: Provisioner) -> None:
    write_env(prov)
    made = api(prov, "POST", "/networks", {"name": "nornos-dev", "ip_range": "10.0.0.0/16", "labels": {
        "nornos.io/env": "dev", "nornos.io/role": "network", "managed-by": "nornos-infra"}})["network"]
    dry = prov.run("dev", "--dry-run")
    assert "~ network nornos-dev add subnet 10.0.1.0/24" in plan_lines(dry.stdout)
    prov.clear_log()
    ok(prov.run("dev"))
    sent = [(r["method"], r["path"]) for r in prov.mutations()]
    add = sent.index(("POST", f"/networks/{made['id']}/actions/add_subnet"))
    assert ("POST", "/networks") not in sent
    assert all(i > add for i, call in enumerate(sent) if call == ("POST", "/servers"))
    assert [s["ip_range"] for s in one(prov, "network", "nornos-dev")["subnets"]] == ["10.0.1.0/24"]
    prov.clear_log()
    assert "Plan: no changes" in ok(prov.run("dev")).stdout and prov.mutations() == []


def test_moving_the_network_range_is_a_replacement_that_needs_confirmation(prov: Provisioner,
                                                                           dev: dict[str, Any]) -> None:
    write_env(prov, network={**dev["network"], "ip_range": "10.5.0.0/16", "subnet": "10.5.1.0/24"})
    dry = prov.run("dev", "--dry-run")
    assert "-/+ network nornos-dev ip_range 10.0.0.0/16 -> 10.5.0.0/16 cannot be changed in place" in \
        plan_lines(dry.stdout)
    prov.clear_log()
    refused = prov.run("dev")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert prov.mutations() == []


# -- the load balancer -------------------------------------------------------------------------------
def test_load_balancer_type_and_algorithm(prov: Provisioner, dev: dict[str, Any]) -> None:
    lb = one(prov, "load_balancer", "nornos-dev")
    write_env(prov, load_balancer={**dev["load_balancer"], "type": "lb21", "algorithm": "least_connections"})
    plan_apply_converge(
        prov, ["~ load balancer nornos-dev type lb11 -> lb21; algorithm round_robin -> least_connections"],
        [("POST", f"/load_balancers/{lb['id']}/actions/change_type"),
         ("POST", f"/load_balancers/{lb['id']}/actions/change_algorithm")])
    after = one(prov, "load_balancer", "nornos-dev")
    assert (after["load_balancer_type"]["name"], after["algorithm"]["type"]) == ("lb21", "least_connections")


def test_load_balancer_services_added_updated_and_deleted(prov: Provisioner, dev: dict[str, Any]) -> None:
    lb = one(prov, "load_balancer", "nornos-dev")
    service_80 = next(s for s in lb["services"] if s["listen_port"] == 80)
    api(prov, "POST", f"/load_balancers/{lb['id']}/actions/update_service",
        {"listen_port": 80, "health_check": {**service_80["health_check"], "interval": 30}})
    write_env(prov, load_balancer={**dev["load_balancer"], "services": [80, 8443]})
    base = f"/load_balancers/{lb['id']}/actions"
    plan_apply_converge(prov, ["~ load balancer nornos-dev update service 80; add service 8443; delete service 443"],
                        [("POST", f"{base}/add_service"), ("POST", f"{base}/update_service"),
                         ("POST", f"{base}/delete_service")])
    services = {s["listen_port"]: s for s in one(prov, "load_balancer", "nornos-dev")["services"]}
    assert sorted(services) == [80, 8443]
    assert services[80]["health_check"]["interval"] == 15
    assert (services[8443]["protocol"], services[8443]["destination_port"],
            services[8443]["health_check"]["port"]) == ("tcp", 8443, 8443)


def test_load_balancer_targets_repaired(prov: Provisioner, dev: dict[str, Any]) -> None:
    lb = one(prov, "load_balancer", "nornos-dev")
    target, = lb["targets"]
    redis = one(prov, "server", "nornos-dev-redis-1")
    base = f"/load_balancers/{lb['id']}/actions"
    api(prov, "POST", f"{base}/remove_target", {"type": "label_selector", "label_selector": target["label_selector"]})
    api(prov, "POST", f"{base}/add_target", {"type": "server", "server": {"id": redis["id"]}, "use_private_ip": True})
    selector = target["label_selector"]["selector"]
    plan_apply_converge(prov, [f"~ load balancer nornos-dev add target selector {selector}; "
                               f"remove target server {redis['id']}"],
                        [("POST", f"{base}/add_target"), ("POST", f"{base}/remove_target")])
    after, = one(prov, "load_balancer", "nornos-dev")["targets"]
    assert (after["type"], after["label_selector"]["selector"], after["use_private_ip"]) == (
        "label_selector", selector, True)


def test_load_balancer_ip_target_added_by_hand_is_removed(prov: Provisioner, dev: dict[str, Any]) -> None:
    lb = one(prov, "load_balancer", "nornos-dev")
    base = f"/load_balancers/{lb['id']}/actions"
    api(prov, "POST", f"{base}/add_target", {"type": "ip", "ip": {"ip": "203.0.113.50"}})
    plan_apply_converge(prov, ["~ load balancer nornos-dev remove target ip 203.0.113.50"],
                        [("POST", f"{base}/remove_target")])
    assert [t["type"] for t in one(prov, "load_balancer", "nornos-dev")["targets"]] == ["label_selector"]


def test_a_new_image_or_a_server_out_of_its_placement_group_is_said_not_done(prov: Provisioner,
                                                                             dev: dict[str, Any]) -> None:
    """Rebuilding a server or moving it between placement groups would stop it: the plan says so and
    changes nothing."""
    worker = one(prov, "server", "nornos-dev-workers-1")
    api(prov, "POST", f"/servers/{worker['id']}/actions/remove_from_placement_group", {})
    pools = copy.deepcopy(dev["pools"])
    pools["redis"]["image"] = "ubuntu-24.04"
    write_env(prov, pools=pools)
    planned = ok(prov.run("dev", "--dry-run"))
    text = " ".join(planned.stdout.split())
    assert ("server nornos-dev-redis-1 runs debian-12, the spec says ubuntu-24.04: existing servers are not rebuilt; "
            "rebuild or replace it deliberately") in text
    assert ("server nornos-dev-workers-1 is in placement group none, the spec implies nornos-dev-workers-spread-1: "
            "moving needs a power-off, not done automatically") in text
    assert plan_lines(planned.stdout) == [] and "no changes" in planned.stdout


def test_a_resource_made_by_hand_under_our_name_is_adopted_not_its_neighbour(prov: Provisioner) -> None:
    """The create answers uniqueness_error: the resource of that exact name is adopted (labelled),
    never another one the list happens to hold first."""
    other = api(prov, "POST", "/placement_groups", {"name": "a-neighbour", "type": "spread"})["placement_group"]
    ours = api(prov, "POST", "/placement_groups", {"name": "nornos-dev-redis-spread-1",
                                                   "type": "spread"})["placement_group"]
    write_env(prov)
    ok(prov.run("dev"))
    adopted = one(prov, "placement_group", "nornos-dev-redis-spread-1")
    assert adopted["id"] == ours["id"] and adopted["labels"]["nornos.io/env"] == "dev"
    neighbour = next(g for g in api(prov, "GET", "/placement_groups")["placement_groups"] if g["id"] == other["id"])
    assert neighbour["labels"] == {}


# -- servers -----------------------------------------------------------------------------------------
def test_server_detached_from_the_network_is_attached_again(prov: Provisioner, dev: dict[str, Any]) -> None:
    redis = one(prov, "server", "nornos-dev-redis-1")
    network = one(prov, "network", "nornos-dev")
    api(prov, "POST", f"/servers/{redis['id']}/actions/detach_from_network", {"network": network["id"]})
    plan_apply_converge(prov, ["~ server nornos-dev-redis-1 attach to network nornos-dev"],
                        [("POST", f"/servers/{redis['id']}/actions/attach_to_network")])
    assert [p["network"] for p in one(prov, "server", "nornos-dev-redis-1")["private_net"]] == [network["id"]]


def test_a_server_found_off_is_powered_on(prov: Provisioner, dev: dict[str, Any]) -> None:
    redis = one(prov, "server", "nornos-dev-redis-1")
    api(prov, "POST", f"/servers/{redis['id']}/actions/poweroff", {})
    for _ in range(100):  # the power-off action runs for a moment
        if one(prov, "server", "nornos-dev-redis-1")["status"] == "off":
            break
        time.sleep(0.05)
    plan_apply_converge(prov, ["~ server nornos-dev-redis-1 power on (the server is off)"],
                        [("POST", f"/servers/{redis['id']}/actions/poweron")])
    assert one(prov, "server", "nornos-dev-redis-1")["status"] == "running"


def test_server_resize_powers_off_changes_type_and_powers_on(prov: Provisioner, dev: dict[str, Any]) -> None:
    redis = one(prov, "server", "nornos-dev-redis-1")
    dev["pools"]["redis"]["server_type"] = "cx33"
    write_env(prov, pools=dev["pools"])
    base = f"/servers/{redis['id']}/actions"
    sent = plan_apply_converge(
        prov, ["~ server nornos-dev-redis-1 server type cx23 -> cx33 (power off, change type, power on)"],
        [("POST", f"{base}/shutdown"), ("POST", f"{base}/change_type"), ("POST", f"{base}/poweron")])
    assert [r["path"].rsplit("/", 1)[1] for r in sent] == ["shutdown", "change_type", "poweron"]
    after = one(prov, "server", "nornos-dev-redis-1")
    assert (after["id"], after["server_type"]["name"], after["status"]) == (redis["id"], "cx33", "running")


def test_server_in_a_location_no_longer_allowed_is_replaced(prov: Provisioner, dev: dict[str, Any]) -> None:
    before = {s["name"]: s["id"] for s in prov.resources("server")}
    write_env(prov, fallback_locations=["fsn1"], location="nbg1")  # fsn1 is still allowed: nothing moves
    same = prov.run("dev", "--dry-run")
    assert same.returncode == 0, same.stderr  # the volume stays where it is too
    assert not [line for line in plan_lines(same.stdout) if line.startswith("-/+ server")], same.stdout
    write_env(prov, fallback_locations=[], location="nbg1")
    dry = prov.run("dev", "--dry-run")
    lines = plan_lines(dry.stdout)
    for name in before:
        assert f"-/+ server {name} location fsn1 -> nbg1" in lines, dry.stdout
    assert "-/+ load balancer nornos-dev location fsn1 -> nbg1" in lines
    refused = prov.run("dev", "--replace-volumes")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    prov.clear_log()
    ok(prov.run("dev", "--yes", "--replace-volumes"))  # the volume: test_location_change_* below
    sent = calls(prov)
    for name, ident in before.items():
        assert sent[("DELETE", f"/servers/{ident}")] == 1, name
    assert sent[("POST", "/servers")] == 6
    after = {s["name"]: s for s in prov.resources("server")}
    assert sorted(after) == sorted(before)
    assert {s["location"]["name"] for s in after.values()} == {"nbg1"}
    assert not set(before.values()) & {s["id"] for s in after.values()}


VOLUME_REFUSED = ("error: volume nornos-dev-postgres-data: its server moves from fsn1 to nbg1, and a volume cannot "
                  "leave fsn1: back up its databases (nornos-pg-restore, docs/RUNBOOK.md \"Moving PostgreSQL to "
                  "another location\"), then run again with --replace-volumes (deletes it and its data) and "
                  "restore on the new server")


def test_location_change_is_refused_while_the_volume_holds_data(prov: Provisioner, dev: dict[str, Any]) -> None:
    """A volume cannot leave its location: without --replace-volumes nothing is planned or changed,
    and one line says how to migrate (plan, apply, even with --yes --force)."""
    write_env(prov, fallback_locations=[], location="nbg1")
    prov.clear_log()
    for args in (("--dry-run",), ("--yes",), ("--yes", "--force")):
        run = prov.run("dev", *args)
        assert run.returncode == 1, f"{args}: {run.stdout}\n{run.stderr}"
        assert [" ".join(line.split()) for line in run.stderr.splitlines() if line.startswith("error:")] == [
            VOLUME_REFUSED], run.stderr
    assert prov.mutations() == []
    volume = one(prov, "volume", "nornos-dev-postgres-data")
    assert volume["location"]["name"] == "fsn1" and volume["server"] is not None


def test_location_change_with_replace_volumes_leaves_nothing_behind(prov: Provisioner, dev: dict[str, Any]) -> None:
    old = one(prov, "volume", "nornos-dev-postgres-data")
    write_env(prov, fallback_locations=[], location="nbg1")
    dry = prov.run("dev", "--dry-run", "--replace-volumes")
    assert dry.returncode == 0, dry.stderr
    assert ("-/+ volume nornos-dev-postgres-data location fsn1 -> nbg1 (--replace-volumes: a new empty volume; the "
            "one in fsn1 and its data are deleted)") in plan_lines(dry.stdout), dry.stdout
    refused = prov.run("dev", "--replace-volumes")  # a replacement still needs --yes
    assert refused.returncode == 1 and "volume nornos-dev-postgres-data" in refused.stderr, refused.stderr
    prov.clear_log()
    ok(prov.run("dev", "--yes", "--replace-volumes"))
    sent = calls(prov)
    assert sent[("POST", f"/volumes/{old['id']}/actions/detach")] == 1
    assert sent[("DELETE", f"/volumes/{old['id']}")] == 1
    assert sent[("POST", "/volumes")] == 1
    volume = one(prov, "volume", "nornos-dev-postgres-data")
    postgres = one(prov, "server", "nornos-dev-postgres-1")
    assert (volume["location"]["name"], volume["server"], volume["size"]) == ("nbg1", postgres["id"], 50)
    assert [v["id"] for v in prov.resources("volume")] == [volume["id"]]  # the old one is not left behind
    prov.clear_log()
    assert "Plan: no changes" in ok(prov.run("dev", "--yes")).stdout
    assert prov.mutations() == []


# -- labels and protection ---------------------------------------------------------------------------
def test_labels_changed_by_hand_are_set_back_and_foreign_labels_kept(prov: Provisioner,
                                                                     dev: dict[str, Any]) -> None:
    redis = one(prov, "server", "nornos-dev-redis-1")
    api(prov, "PUT", f"/servers/{redis['id']}", {"labels": {**redis["labels"], "nornos.io/pool": "other",
                                                            "team": "ops"}})
    plan_apply_converge(prov, ["~ server nornos-dev-redis-1 labels differ"], [("PUT", f"/servers/{redis['id']}")])
    assert one(prov, "server", "nornos-dev-redis-1")["labels"] == {**redis["labels"], "team": "ops"}


def test_protection_on_then_off(prov: Provisioner, dev: dict[str, Any]) -> None:
    ids = {(k, r["name"]): r["id"] for k in ("network", "server", "volume", "load_balancer")
           for r in prov.resources(k)}
    path = {"network": "networks", "server": "servers", "volume": "volumes", "load_balancer": "load_balancers"}
    title = {"network": "network", "server": "server", "volume": "volume", "load_balancer": "load balancer"}
    order = ("network", "server", "volume", "load_balancer")
    expected = [("POST", f"/{path[k]}/{i}/actions/change_protection") for (k, _), i in ids.items()]
    for on in (True, False):
        write_env(prov, protection=on)
        lines = [f"~ {title[k]} {n} protection {'on' if on else 'off'}"
                 for (k, n) in sorted(ids, key=lambda key: (order.index(key[0]), key[1]))]
        plan_apply_converge(prov, lines, expected)
        servers = prov.resources("server")
        assert all(s["protection"] == {"delete": on, "rebuild": on} for s in servers)
        for kind in ("network", "volume", "load_balancer"):
            assert all(r["protection"] == {"delete": on} for r in prov.resources(kind)), kind


# -- SSH keys ----------------------------------------------------------------------------------------
def test_key_uploaded_under_another_name_is_used_as_it_is(prov: Provisioner) -> None:
    laptop = api(prov, "POST", "/ssh_keys", {"name": "laptop", "public_key": KEY})["ssh_key"]
    write_env(prov)
    dry = prov.run("dev", "--dry-run", "--verbose")
    assert "ssh key nornos-dev-admin uses the existing key laptop" in " ".join(dry.stdout.split())
    assert not [line for line in plan_lines(dry.stdout) if "ssh key" in line]
    prov.clear_log()
    ok(prov.run("dev"))
    assert calls(prov)[("POST", "/ssh_keys")] == 0
    assert calls(prov)[("POST", "/servers")] == 6
    keys = requests.get(f"{prov.lc.endpoint}/ssh_keys", headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=10).json()["ssh_keys"]
    assert [(k["id"], k["name"]) for k in keys] == [(laptop["id"], "laptop")]
    prov.clear_log()
    assert "Plan: no changes" in ok(prov.run("dev")).stdout and prov.mutations() == []


def test_changed_key_under_our_name_is_replaced(prov: Provisioner, dev: dict[str, Any]) -> None:
    old = one(prov, "ssh_key", "nornos-dev-admin")
    new_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0IfGqZ9q6x0pD7m0dVh3yE5vYkqQ0mE4x6m2G6f8Yt admin@nornos"
    (prov.env_dir / "dev.yaml").write_text((prov.env_dir / "dev.yaml").read_text().replace(
        dev["ssh_keys"][0]["public_key"].split()[1], new_key.split()[1]))
    plan_apply_converge(prov, ["-/+ ssh key nornos-dev-admin public key changed (keys cannot be edited; servers "
                               "keep the keys they booted with)"],
                        [("DELETE", f"/ssh_keys/{old['id']}"), ("POST", "/ssh_keys")], "--yes")
    assert one(prov, "ssh_key", "nornos-dev-admin")["public_key"] == new_key.rsplit(" ", 1)[0]


# -- a failed change -----------------------------------------------------------------------------------
def test_what_depends_on_a_failed_change_is_reported_as_not_started(prov: Provisioner) -> None:
    write_env(prov)
    prov.lc.side("PUT", "faults", {"errors": [{"method": "POST", "path": "/networks", "code": "invalid_input",
                                               "times": 1}]})
    prov.clear_log()
    failed = prov.run("dev")
    assert failed.returncode == 1
    errors = [" ".join(line.split()) for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: create network nornos-dev: APIException: invalid_input (injected fault) (invalid_input)",
        "error: 1 change(s) failed, 10 done, 8 not started; run again to converge"], failed.stderr
    sent = calls(prov)
    # the key, the four firewalls and five placement groups were made; nothing that needs the network was begun
    assert sent == Counter({("POST", "/networks"): 1, ("POST", "/ssh_keys"): 1, ("POST", "/firewalls"): 4,
                            ("POST", "/placement_groups"): 5}), sent
    prov.lc.side("PUT", "faults", {})
    dry = prov.run("dev", "--dry-run")
    assert "Plan: 9 to create (10 unchanged)." in dry.stdout
    ok(prov.run("dev"))
    prov.clear_log()
    assert "Plan: no changes" in ok(prov.run("dev")).stdout and prov.mutations() == []
