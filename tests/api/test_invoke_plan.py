"""``invoke plan`` and ``invoke destroy`` as people type them, against localcloud's API (no real
machines here: the hosts of a provisioned env cannot be logged in to, which the plan reports in
one line; the whole plan on real machines is in tests/e2e/test_deploy_hosts.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nornos_infra import overrides, secrets
from nornos_infra.admin_key import ensure_keypair
from tests.conftest import TOKEN, LocalCloud

ROOT = Path(__file__).resolve().parents[2]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ admin@nornos"


class Project:
    """A checkout whose inventories/ and .kube/ are its own (NORNOS_PROJECT_DIR), pointed at localcloud."""

    def __init__(self, lc: LocalCloud, tmp: Path) -> None:
        self.lc, self.dir = lc, tmp / "project"
        self.dir.mkdir()
        for name in ("environments", "deploys", "manifests", "provision.py"):
            (self.dir / name).symlink_to(ROOT / name)
        key = tmp / "lc" / "ssh" / "id_ed25519"
        self.secrets = tmp / "lc" / "secrets"
        ensure_keypair(key)
        self.overrides = overrides.write(tmp / "lc" / "overrides.yaml", overrides.for_localcloud(
            lc.endpoint, "198.51.100.1", key, tmp / "lc" / "secrets", tmp / "lc" / "age.txt"))
        self.env = {**{k: v for k, v in os.environ.items() if k not in ("SSH_PUBLIC_KEY", overrides.ENV_VAR)},
                    "HOME": str(tmp), "HCLOUD_ENDPOINT": lc.endpoint, "HCLOUD_TOKEN": TOKEN, "SSH_PUBLIC_KEY": KEY,
                    "NORNOS_OVERRIDES": str(self.overrides), "NORNOS_PROJECT_DIR": str(self.dir),
                    "NORNOS_POLL_INTERVAL": "0.05", "COLUMNS": "200"}

    def invoke(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).with_name("invoke")), *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def _list(lc: LocalCloud, kind: str) -> list[dict[str, object]]:
    import requests

    reply = requests.get(f"{lc.endpoint}/{kind}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
                         params={"label_selector": "nornos.io/env=dev"})
    return list(reply.json()[kind])


@pytest.fixture
def project(localcloud: LocalCloud, tmp_path: Path) -> Project:
    localcloud.reset()
    return Project(localcloud, tmp_path)


def test_plan_of_a_new_env_shows_three_sections_and_exits_2(project: Project) -> None:
    done = project.invoke("plan", "--env", "dev")
    assert done.returncode == 2, done.stdout + done.stderr
    sections = [line for line in done.stdout.splitlines() if line.startswith("== ")]
    assert sections == ["== cloud: provision.py dev --dry-run",
                        "== hosts: pyinfra --dry --diff inventories/dev.py deploys/all.py",
                        "== manifests: invoke manifests --env dev --dry-run (server-side dry run)"]
    assert "Monthly cost:" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1] == (
        "plan dev: cloud 19 to create (0 unchanged); hosts not run: no servers yet (the cloud plan creates them); "
        "manifests not run: no cluster: k3s is not installed on these hosts (no internet access and no "
        "k3s_binary_path), so there is nothing to compare the manifests with")
    assert _list(project.lc, "servers") == [], "a plan creates nothing"


def test_plan_json_carries_all_three_layers(project: Project) -> None:
    done = project.invoke("plan", "--env", "dev", "--json")
    assert done.returncode == 2
    data = json.loads(done.stdout)
    assert (data["env"], data["exit_status"], data["pending"]) == ("dev", 2, ["cloud"])
    assert list(data["layers"]) == ["cloud", "hosts", "manifests"]
    cloud = data["layers"]["cloud"]
    assert cloud["state"] == "changes pending" and cloud["summary"] == "19 to create"
    assert cloud["data"]["plan"]["counts"]["create"] == 19 and cloud["data"]["plan"]["cost"]["before"] == "0.00"
    assert data["layers"]["hosts"]["state"] == data["layers"]["manifests"]["state"] == "not run"


def test_plan_after_provisioning_names_the_hosts_it_cannot_reach(project: Project) -> None:
    assert project.invoke("provision", "--env", "dev", "--yes").returncode == 0
    without_secrets = project.invoke("plan", "--env", "dev").stdout.rstrip().splitlines()[-1]
    assert f"hosts failed: {project.secrets / 'dev.sops.yaml'} does not exist; create it with `invoke secrets.init " \
           "--env dev`" in without_secrets
    secrets.init("dev", directory=project.secrets, identity=project.secrets.parent / "age.txt")
    done = project.invoke("plan", "--env", "dev")
    last = done.stdout.rstrip().splitlines()[-1]
    assert done.returncode == 1, done.stdout
    assert last.startswith("plan dev: cloud no changes (19 unchanged); hosts failed: 6 host(s) could not be "
                           "planned (nornos-dev-agents-1, ")
    assert "are the servers running and reachable over SSH?" in last and "Traceback" not in done.stdout


def test_destroy_without_yes_and_without_a_terminal_refuses_in_one_line(project: Project) -> None:
    assert project.invoke("provision", "--env", "dev", "--yes").returncode == 0
    refused = project.invoke("destroy", "--env", "dev")
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in refused.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].endswith("nothing was changed: review the plan and re-run with --yes")
    assert len(_list(project.lc, "servers")) == 6, "nothing deleted"
    done = project.invoke("destroy", "--env", "dev", "--yes")
    assert done.returncode == 0, done.stderr
    assert [kind for kind in ("servers", "volumes", "networks", "firewalls", "load_balancers", "ssh_keys",
                              "placement_groups") if _list(project.lc, kind)] == []


def test_refresh_inventory_goes_with_a_dry_run_only(project: Project) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "provision.py"), "dev", "--refresh-inventory"], cwd=ROOT,
                          env=project.env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr.strip()) == (
        2, "provision.py: error: --refresh-inventory goes with --dry-run or --check (an apply writes the inventory "
           "anyway); see provision.py --help")
