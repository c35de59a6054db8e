"""provision.py against localcloud with real machines (--hosts nspawn): dev's servers boot,
answer SSH as the inventory says, a second run changes nothing, --destroy leaves nothing."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nornos_infra.admin_key import ensure_keypair
from tests.conftest import TOKEN, LocalCloud
from tests.e2e.conftest import assert_nothing_left, ssh
from tests.e2e.test_api_hosts import start_with_hosts

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hosted() -> Iterator[tuple[LocalCloud, Path]]:
    with tempfile.TemporaryDirectory(prefix="provision-hosts-") as tmp:
        lc = start_with_hosts(Path(tmp) / "lc")
        try:
            yield lc, Path(tmp)
        finally:
            lc.stop()
            assert_nothing_left()


def provision(lc: LocalCloud, work: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HCLOUD_ENDPOINT": lc.endpoint, "HCLOUD_TOKEN": TOKEN, "NORNOS_POLL_INTERVAL": "0.2"}
    # no --admin-ip: localcloud tells provision.py this machine's address on its public side
    cmd = [sys.executable, str(ROOT / "provision.py"), "dev", "--yes", "--env-dir", str(work / "environments"),
           "--inventory-dir", str(work / "inventories"), *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_dev_on_real_machines(hosted: tuple[LocalCloud, Path]) -> None:
    lc, work = hosted
    public_key = ensure_keypair(work / "ssh" / "id_ed25519")
    data: dict[str, Any] = yaml.safe_load((ROOT / "environments" / "dev.yaml").read_text())
    data["ssh_keys"] = [{"name": "admin", "public_key_file": str(public_key)}]
    data["admin_cidrs"] = ["198.51.100.1/32"]  # localcloud: this machine on the public side
    (work / "environments").mkdir()
    (work / "environments" / "dev.yaml").write_text(yaml.safe_dump(data))

    first = provision(lc, work)
    assert first.returncode == 0, first.stderr[-3000:]
    inventory = runpy.run_path(str(work / "inventories" / "dev.py"))
    assert inventory["k3s_servers"][1]["internet_access"] is False
    hosts = [h for group in ("k3s_servers", "k3s_agents", "postgres", "redis") for h in inventory[group][0]]
    assert len(hosts) == 6
    for name, host in hosts:
        assert ssh(work / "ssh" / "id_ed25519", host["ssh_hostname"], "hostname").stdout.strip() == name
        private = ssh(work / "ssh" / "id_ed25519", host["ssh_hostname"], "ip -o -4 addr show").stdout
        assert f" {host['private_ip']}/" in private

    lc.side("DELETE", "requests")
    again = provision(lc, work)
    assert again.returncode == 0 and "no changes" in again.stdout
    assert not [r for r in lc.requests_log() if r["method"] in ("POST", "PUT", "DELETE")]

    gone = provision(lc, work, "--destroy")
    assert gone.returncode == 0, gone.stderr[-3000:]
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert "lc-" not in names
