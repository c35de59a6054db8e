"""Issue 10, finding 3: the power state is part of the desired state. A server that failed to
start (or was shut down) shows in the plan as ``~ server ...: power on (the server is off)``,
``--check`` reports it as drift (exit 2), and applying starts it; then there is nothing to do."""

from __future__ import annotations

import time

import requests

from tests.api.test_provision import Provisioner, ok, prov  # noqa: F401  (the fixture)
from tests.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def statuses(prov: Provisioner) -> dict[str, str]:  # noqa: F811
    return {s["name"]: s["status"] for s in prov.resources("server")}


def test_servers_that_failed_to_start_are_started_by_the_next_run(prov: Provisioner) -> None:  # noqa: F811
    prov.write_env("dev")
    prov.lc.side("PUT", "faults", {"actions": {"start_server": 1.0}})
    failed = prov.run("dev", "--yes")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    prov.lc.side("PUT", "faults", {})
    off = sorted(name for name, status in statuses(prov).items() if status == "off")
    assert len(off) == 6, statuses(prov)

    check = prov.run("dev", "--check")
    assert check.returncode == 2, check.stdout + check.stderr
    plan = " ".join(check.stdout.split())
    for name in off:
        assert f"~ server {name}" in plan, plan
    assert plan.count("power on (the server is off)") == 6, plan

    prov.clear_log()
    ok(prov.run("dev", "--yes"))
    assert set(statuses(prov).values()) == {"running"}
    poweron = [r for r in prov.mutations() if r["path"].endswith("/actions/poweron")]
    assert len(poweron) == 6
    again = prov.run("dev", "--check")
    assert again.returncode == 0 and "no changes" in again.stdout, again.stdout


def test_a_server_shut_down_by_hand_is_powered_on(prov: Provisioner) -> None:  # noqa: F811
    prov.write_env("dev")
    ok(prov.run("dev"))
    server = next(s for s in prov.resources("server") if s["name"] == "nornos-dev-redis-1")
    resp = requests.post(f"{prov.lc.endpoint}/servers/{server['id']}/actions/poweroff", headers=AUTH, timeout=10)
    resp.raise_for_status()
    action = resp.json()["action"]["id"]
    for _ in range(200):
        if requests.get(f"{prov.lc.endpoint}/actions/{action}", headers=AUTH, timeout=10).json()["action"][
                "status"] != "running":
            break
        time.sleep(0.05)
    assert statuses(prov)["nornos-dev-redis-1"] == "off"
    dry = prov.run("dev", "--dry-run", "--detailed-exitcode")
    assert dry.returncode == 2
    assert "~ server nornos-dev-redis-1" in " ".join(dry.stdout.split())
    prov.clear_log()
    ok(prov.run("dev"))
    assert [(r["method"], r["path"]) for r in prov.mutations()] == [
        ("POST", f"/servers/{server['id']}/actions/poweron")]
    assert statuses(prov)["nornos-dev-redis-1"] == "running"
