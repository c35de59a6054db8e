"""Fixtures for tests on real hosts: skip unless root with systemd-nspawn and debootstrap (under
``CI=true``: fail, tests/e2e/prerequisites.py); an SSH key; ``ssh`` into machines; a check that
nothing of localcloud's is left behind."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.hosts.system import OUR_LINK, OUR_NETNS, OVERLAY_SOURCE, all_cgroup_roots, why_unsupported
from localcloud.hosts.volumes import LOOPS_DIR
from tests.e2e.prerequisites import skip_or_fail

REASON = why_unsupported()
OUR_VOLUME_FILE = re.compile(r"localcloud.*/volumes/\d+\.img")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if REASON is not None and item.get_closest_marker("e2e") is not None:
        skip_or_fail(f"e2e on real hosts: {REASON}")


@pytest.fixture(scope="session")
def ssh_key() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="localcloud-e2e-key-") as tmp:
        key = Path(tmp) / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e@localcloud", "-f", str(key)],
                       check=True)
        yield key


def ssh(key: Path, ip: str, command: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command as root on a machine, by its IP."""
    args = ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", f"root@{ip}", command]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ssh {ip} {command!r} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ours() -> dict[str, list[str]]:
    """Every kernel object and process of localcloud's hosts on this machine."""
    netns = [n.split()[0] for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                                   check=True).stdout.splitlines() if n.strip()]
    links = [link["ifname"] for link in json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True,
                                                                  text=True, check=True).stdout)]
    mounts = [line.split(" - ")[1].split()[1] for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if " - overlay " in line and line.split(" - ")[1].split()[1].startswith(OVERLAY_SOURCE)]
    procs = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            text = b" ".join(cmd).decode(errors="replace")
            if "--machine=lc-" in text or ("apt-cacher-ng" in text and "/run/localcloud/" in text) \
                    or ("haproxy" in text and "/run/localcloud/lb/" in text):
                procs.append(f"{proc.name} {text[:80]}")
    loops = json.loads(subprocess.run(["losetup", "-J", "-l"], capture_output=True, text=True,
                                      check=True).stdout or "{}").get("loopdevices", [])
    recorded = sorted(p.name for p in LOOPS_DIR.iterdir()) if LOOPS_DIR.is_dir() else []
    return {
        "netns": [n for n in netns if OUR_NETNS.match(n)],
        "loops": [f"{d['name']} {d['back-file']}" for d in loops
                  if OUR_VOLUME_FILE.search(d.get("back-file") or "")] + [f"record {r}" for r in recorded],
        "links": [n for n in links if OUR_LINK.match(n)],
        "mounts": mounts,
        "cgroups": [str(p) for root in all_cgroup_roots() for p in root.iterdir() if p.is_dir()],
        "processes": procs,
    }


def assert_nothing_left() -> None:
    left = {k: v for k, v in ours().items() if v}
    assert not left, f"localcloud left these behind: {left}"
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "0"


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="localcloud-e2e-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
