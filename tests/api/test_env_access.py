"""The committed env files as a fresh clone has them, localcloud's overrides, and what the
inventory needs for the bare ``pyinfra -y inventories/<env>.py deploys/all.py``: pinned host
keys, a known_hosts file, the key and the secrets' location. Against a real localcloud, through
provision.py as people run it."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import paramiko
import pytest
import requests

from nornos_infra import host_keys, overrides
from nornos_infra.admin_key import ensure_keypair
from tests.conftest import TOKEN, LocalCloud

ROOT = Path(__file__).resolve().parents[2]
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ admin@nornos"
MUTATING = ("POST", "PUT", "DELETE")


class Run:
    def __init__(self, lc: LocalCloud, tmp: Path) -> None:
        self.lc, self.tmp = lc, tmp
        self.home = tmp / "home"  # no ~/.ssh/id_ed25519.pub: a machine that has never made a key
        self.home.mkdir()
        self.inv = tmp / "inventories"

    def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if k not in ("SSH_PUBLIC_KEY", overrides.ENV_VAR)}
        variables = {**base, "HOME": str(self.home), "HCLOUD_ENDPOINT": self.lc.endpoint, "HCLOUD_TOKEN": TOKEN,
                     "NORNOS_POLL_INTERVAL": "0.05", "COLUMNS": "200", **env}
        cmd = [sys.executable, str(ROOT / "provision.py"), *args, "--inventory-dir", str(self.inv)]
        return subprocess.run(cmd, env=variables, capture_output=True, text=True, timeout=300, cwd=ROOT)

    def mutations(self) -> list[dict[str, Any]]:
        return [r for r in self.lc.requests_log() if r["method"] in MUTATING]


@pytest.fixture
def run(localcloud: LocalCloud, tmp_path: Path) -> Run:
    localcloud.reset()
    return Run(localcloud, tmp_path)


@pytest.mark.parametrize("env", ["dev", "staging", "production"])
def test_a_fresh_clone_plans_every_env_with_the_ci_key(run: Run, env: str) -> None:
    """`SSH_PUBLIC_KEY=... python provision.py production --dry-run`: no edits, no overrides. The
    placeholder admin_cidrs do not hold this machine: a plan warns, applying would refuse."""
    plan = run(env, "--dry-run", SSH_PUBLIC_KEY=KEY)
    assert plan.returncode == 0, plan.stderr
    assert f"+ server nornos-{env}-control-plane-1" in " ".join(plan.stdout.split())
    assert "warning:" in plan.stderr and "198.51.100.1" in plan.stderr and "applying would be refused" in plan.stderr
    assert run.mutations() == []
    assert not run.inv.exists(), "a plan writes nothing"


def test_applying_the_placeholder_is_refused(run: Run) -> None:
    applied = run("dev", "--yes", SSH_PUBLIC_KEY=KEY)
    assert applied.returncode == 1 and "not in admin_cidrs" in applied.stderr and "Traceback" not in applied.stderr
    assert run.mutations() == []


def test_no_key_anywhere_is_one_line(run: Run) -> None:
    plan = run("dev", "--dry-run")
    assert plan.returncode == 1
    errors = [line for line in plan.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, plan.stderr
    assert "$SSH_PUBLIC_KEY is not set and cannot read" in errors[0] and "id_ed25519.pub" in errors[0]
    assert "Traceback" not in plan.stderr and run.mutations() == []


def test_a_bad_ci_secret_is_refused_without_echoing_it(run: Run) -> None:
    secret = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n-----END OPENSSH PRIVATE KEY-----"
    plan = run("dev", "--dry-run", SSH_PUBLIC_KEY=secret)
    assert plan.returncode == 1 and "$SSH_PUBLIC_KEY is a PRIVATE key, not an SSH public key" in plan.stderr
    assert len(plan.stderr.strip().splitlines()) == 1
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmU" not in plan.stdout + plan.stderr


def _localcloud_overrides(run: Run, endpoint: str) -> tuple[Path, Path]:
    key = run.tmp / "lc" / "ssh" / "id_ed25519"
    ensure_keypair(key)
    path = overrides.write(run.tmp / "lc" / "overrides.yaml", overrides.for_localcloud(
        endpoint, "198.51.100.1", key, run.tmp / "lc" / "secrets", run.tmp / "lc" / "age.txt"))
    return path, key


def test_localcloud_overrides_then_pinned_host_keys_and_a_no_op(run: Run) -> None:
    """The demo's path: the committed dev.yaml plus localcloud's overrides. Every server gets a
    host key in its user_data and label; the inventory names the known_hosts file built from the
    labels, the key to log in with and where the secrets are; a second run changes nothing."""
    path, key = _localcloud_overrides(run, run.lc.endpoint)
    first = run("dev", "--yes", NORNOS_OVERRIDES=str(path), SSH_PUBLIC_KEY=KEY)
    assert first.returncode == 0, first.stderr
    assert f"overrides from {path}" in first.stderr
    listed = requests.get(f"{run.lc.endpoint}/servers", headers={"Authorization": f"Bearer {TOKEN}"},
                          params={"label_selector": "nornos.io/env=dev"}, timeout=10).json()["servers"]
    assert len(listed) == 6
    pinned = {s["public_net"]["ipv4"]["ip"]: host_keys.from_label(s["labels"][host_keys.LABEL]) for s in listed}
    assert all(pinned.values()) and len(set(pinned.values())) == 6, "one fresh key per server"

    inventory = runpy.run_path(str(run.inv / "dev.py"))
    common = inventory["postgres"][1]
    assert common["ssh_user"] == "root" and common["ssh_key"] == str(key)
    assert common["ssh_known_hosts_file"] == str((run.inv / "dev.known_hosts").resolve())
    assert common["ssh_strict_host_key_checking"] == "accept-new" and common["internet_access"] is False
    assert common["sops_dir"] == str(run.tmp / "lc" / "secrets")
    assert common["sops_age_key_file"] == str(run.tmp / "lc" / "age.txt")
    assert common["admin_cidrs"] == ["198.51.100.1/32"]
    known = paramiko.HostKeys(common["ssh_known_hosts_file"])
    for address, public in pinned.items():
        entry = known.lookup(address)
        assert entry is not None and f"ssh-ed25519 {entry['ssh-ed25519'].get_base64()}" == public
    text = (run.inv / "dev.py").read_text() + (run.inv / "dev.known_hosts").read_text()
    assert "PRIVATE KEY" not in text and "PRIVATE KEY" not in first.stdout + first.stderr

    run.lc.side("DELETE", "requests")
    again = run("dev", NORNOS_OVERRIDES=str(path))
    assert again.returncode == 0 and "no changes" in again.stdout, again.stderr
    assert run.mutations() == []
    assert (run.inv / "dev.py").read_text() + (run.inv / "dev.known_hosts").read_text() == text


def test_overrides_for_another_endpoint_are_refused(run: Run) -> None:
    path, _ = _localcloud_overrides(run, "http://127.0.0.1:1/v1")
    plan = run("dev", "--dry-run", NORNOS_OVERRIDES=str(path))
    assert plan.returncode == 1 and f"is for http://127.0.0.1:1/v1, not {run.lc.endpoint}" in plan.stderr
    missing = run("dev", "--dry-run", NORNOS_OVERRIDES=str(run.tmp / "nope.yaml"))
    assert missing.returncode == 1 and f"NORNOS_OVERRIDES: {run.tmp / 'nope.yaml'} file not found" in missing.stderr
    assert run.mutations() == []
