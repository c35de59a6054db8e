"""Host keys pinned at create time, on a real machine: provision.py with localcloud's overrides
makes one server; its sshd presents exactly the key its label names, OpenSSH accepts it strictly
through the known_hosts file the inventory names, a different pinned key is refused, and the
private half is nowhere but in the machine's /etc/ssh."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from nornos_infra import host_keys, overrides
from nornos_infra.admin_key import ensure_keypair
from tests.conftest import TOKEN, LocalCloud
from tests.e2e.conftest import assert_nothing_left, ssh
from tests.e2e.test_api_hosts import start_with_hosts, stop_with_hosts

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SERVER = "nornos-pin-control-plane-1"


@pytest.fixture(scope="module")
def hosted() -> Iterator[tuple[LocalCloud, Path]]:
    with tempfile.TemporaryDirectory(prefix="pinned-keys-") as tmp:
        lc = start_with_hosts(Path(tmp) / "lc")
        try:
            yield lc, Path(tmp)
        finally:
            stop_with_hosts(lc)
            assert_nothing_left()


def _provision(lc: LocalCloud, work: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HCLOUD_ENDPOINT": lc.endpoint, "HCLOUD_TOKEN": TOKEN, "NORNOS_POLL_INTERVAL": "0.2",
           overrides.ENV_VAR: str(work / "overrides.yaml")}
    env.pop("SSH_PUBLIC_KEY", None)
    cmd = [sys.executable, str(ROOT / "provision.py"), "pin", "--yes", "--env-dir", str(work / "env"),
           "--inventory-dir", str(work / "inv"), *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)


def _strict_ssh(key: Path, known_hosts: Path, ip: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-F", "/dev/null", "-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                           "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                           f"root@{ip}", "cat /etc/ssh/ssh_host_ed25519_key.pub"],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_machine_presents_the_key_it_was_given(hosted: tuple[LocalCloud, Path]) -> None:
    lc, work = hosted
    key = work / "ssh" / "id_ed25519"
    ensure_keypair(key)
    overrides.write(work / "overrides.yaml", overrides.for_localcloud(lc.endpoint, "198.51.100.1", key,
                                                                      work / "secrets", work / "age.txt"))
    (work / "env").mkdir()
    data = yaml.safe_load((ROOT / "environments" / "dev.yaml").read_text())  # as committed: no edits but size
    data.update(name="pin", pools={"control-plane": {"role": "k3s_server", "server_type": "cx23", "count": 1}},
                load_balancer=None)
    (work / "env" / "pin.yaml").write_text(yaml.safe_dump(data))

    first = _provision(lc, work)
    assert first.returncode == 0, first.stderr[-3000:]
    common = runpy.run_path(str(work / "inv" / "pin.py"))["k3s_servers"][1]
    (name, host), = runpy.run_path(str(work / "inv" / "pin.py"))["k3s_servers"][0]
    assert name == SERVER and common["ssh_key"] == str(key)
    known = Path(common["ssh_known_hosts_file"])
    pinned = next(line.split(" ", 1)[1] for line in known.read_text().splitlines() if not line.startswith("#"))

    shown = _strict_ssh(key, known, host["ssh_hostname"])
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split()[:2] == pinned.split()
    assert "PRIVATE KEY" not in ssh(key, host["ssh_hostname"], "cat /var/lib/localcloud/instance.json").stdout
    assert ssh(key, host["ssh_hostname"], "stat -c %a /etc/ssh/ssh_host_ed25519_key").stdout.strip() == "600"

    wrong = work / "wrong.known_hosts"
    wrong.write_text(host_keys.known_hosts([([host["ssh_hostname"]], host_keys.generate().public_line)]))
    refused = _strict_ssh(key, wrong, host["ssh_hostname"])
    assert refused.returncode == 255 and "Host key verification failed" in refused.stderr

    lc.side("DELETE", "requests")
    again = _provision(lc, work)
    assert again.returncode == 0 and "no changes" in again.stdout
    assert not [r for r in lc.requests_log() if r["method"] in ("POST", "PUT", "DELETE")]
    assert _provision(lc, work, "--destroy").returncode == 0
