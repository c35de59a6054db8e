"""Running commands and reading kernel state for the hosts backend (root on Linux).

Every kernel object localcloud creates carries one of the names below, so that cleanup
after a killed run can find and remove exactly ours and nothing else on the machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("localcloud.hosts")

RUN_DIR = Path("/run/localcloud")  # lock, recorded processes, apt proxy runtime files
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_GROUP = "localcloud"  # every machine's cgroup lives below <hierarchy>/localcloud/
IFNAMSIZ = 15

PUBLIC_BRIDGE = "lc-pub"
# host-side names: lc-pub, lc-n<network id> (bridges), lcp<server id> (public veth),
# lcn<server id>-<slot> or lcn<12 hex> (private veths), lc-<server id> (netns); other
# internet hosts (probes): lc-inet<k> (netns), lci<k> (veth); load balancers: lc-lb<id>
# (netns), lcb<id> (public veth), lcb<id>-<network id> or lcb<12 hex> (private veths)
OUR_LINK = re.compile(r"^(lc-pub|lc-n\d+|lcp\d+|lcn\d+-\d+|lcn[0-9a-f]{12}|lci\d+"
                      r"|lcb\d+|lcb\d+-\d+|lcb[0-9a-f]{12})$")
OUR_NETNS = re.compile(r"^lc-(\d+|inet\d+|lb\d+)$")
OVERLAY_SOURCE = "localcloud-"  # overlay mounts are named localcloud-<server id>
NFT_PREFIX = "localcloud"  # nft tables (firewalls, later) are named localcloud*


class HostError(Exception):
    """A host operation failed; the message is one line saying what and why."""


def run(cmd: Sequence[str | os.PathLike[str]], *, check: bool = True, input: str | None = None,
        timeout: float | None = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; HostError with its last stderr line when it fails."""
    args = [str(c) for c in cmd]
    try:
        proc = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **env} if env else None, check=False)
    except subprocess.TimeoutExpired as exc:
        raise HostError(f"{' '.join(args[:4])} did not finish within {timeout} s") from exc
    except FileNotFoundError as exc:
        raise HostError(f"{args[0]} is not installed (run scripts/hosts-deps.sh)") from exc
    if check and proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise HostError(f"{' '.join(args)} failed ({proc.returncode}): {lines[-1] if lines else 'no output'}")
    return proc


def missing_tools() -> list[str]:
    """The programs --hosts nspawn needs that are not installed."""
    tools = ("systemd-nspawn", "debootstrap", "ip", "nsenter", "apt-cacher-ng", "mount", "umount")
    return [t for t in tools if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]


def why_unsupported() -> str | None:
    """None when this machine can run real hosts, else the reason in one line."""
    if os.name != "posix" or not Path("/proc/self/mountinfo").exists():
        return "real hosts need Linux"
    if os.geteuid() != 0:
        return "real hosts need root"
    missing = missing_tools()
    if missing:
        return f"missing {', '.join(missing)} (run scripts/hosts-deps.sh)"
    return None


def private_veth(server_id: int, slot: int) -> str:
    name = f"lcn{server_id}-{slot}"
    if len(name) <= IFNAMSIZ:
        return name
    return "lcn" + hashlib.sha1(f"{server_id}-{slot}".encode()).hexdigest()[:12]


def netns_name(server_id: int) -> str:
    return f"lc-{server_id}"


def network_bridge(network_id: int) -> str:
    name = f"lc-n{network_id}"
    if len(name) > IFNAMSIZ:
        raise HostError(f"network id {network_id} is too large for an interface name")
    return name


# -- processes -----------------------------------------------------------------------------
def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (tells a recorded PID from a reused one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def record_process(name: str, pid: int) -> None:
    pids = RUN_DIR / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    (pids / f"{name}.pid").write_text(f"{pid} {start_time(pid) or ''}\n")


def forget_process(name: str) -> None:
    (RUN_DIR / "pids" / f"{name}.pid").unlink(missing_ok=True)


def recorded_processes() -> dict[str, int]:
    """Recorded processes that still run (same PID and start time), by name."""
    out: dict[str, int] = {}
    pids = RUN_DIR / "pids"
    if not pids.is_dir():
        return out
    for f in pids.glob("*.pid"):
        try:
            pid_text, _, started = f.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            f.unlink(missing_ok=True)
            continue
        if start_time(pid) is not None and start_time(pid) == started:
            out[f.stem] = pid
        else:
            f.unlink(missing_ok=True)
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() \
        else "X"
    return state not in ("Z", "X")


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


# -- cgroups -------------------------------------------------------------------------------
def cgroup_hierarchies() -> list[Path]:
    """Where machines' cgroups go: the unified hierarchy and, on v1/hybrid hosts, name=systemd."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    out = []
    for sub in ("unified", "systemd"):
        if (CGROUP_ROOT / sub / "cgroup.procs").exists():
            out.append(CGROUP_ROOT / sub)
    return out


def all_cgroup_roots() -> list[Path]:
    """Every mounted hierarchy's localcloud/ directory (cleanup looks at each)."""
    roots = [CGROUP_ROOT / CGROUP_GROUP] if (CGROUP_ROOT / "cgroup.procs").exists() else []
    if CGROUP_ROOT.is_dir():
        roots += [p / CGROUP_GROUP for p in CGROUP_ROOT.iterdir() if (p / "cgroup.procs").exists()]
    return [r for r in roots if r.is_dir()]


def _cgroup_dirs(path: Path) -> list[Path]:
    """A cgroup and its descendants, top-down; cgroups that vanish meanwhile are skipped."""
    return [Path(root) for root, _, _ in os.walk(path)]


def cgroup_pids(path: Path) -> list[int]:
    pids: list[int] = []
    for cg in _cgroup_dirs(path):
        try:
            pids += [int(x) for x in (cg / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            continue
    return pids


def remove_cgroup_tree(path: Path, keep_root: bool = False) -> None:
    """rmdir a cgroup and its children, deepest first (they must be empty of processes)."""
    dirs = sorted(_cgroup_dirs(path), key=lambda p: len(p.parts), reverse=True)
    if keep_root:
        dirs = [d for d in dirs if d != path]
    for d in dirs:
        try:
            d.rmdir()
        except OSError as exc:
            log.debug("cannot remove cgroup %s: %s", d, exc)


def kill_cgroup(path: Path, timeout: float = 10) -> None:
    """SIGKILL every process in a cgroup tree until it is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = cgroup_pids(path)
        if not pids:
            return
        for pid in pids:
            kill(pid)
        time.sleep(0.05)
    raise HostError(f"processes in {path} survived SIGKILL for {timeout:.0f} s")


# -- mounts --------------------------------------------------------------------------------
def overlay_mounts() -> dict[str, Path]:
    """Our overlay mounts (source localcloud-<id>) -> mount point."""
    out: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(tail) >= 2 and tail[0] == "overlay" and tail[1].startswith(OVERLAY_SOURCE):
            out[tail[1]] = Path(fields[4].encode().decode("unicode_escape"))
    return out


def mounts_below(root: Path) -> list[Path]:
    """Mount points at or below root, deepest first."""
    points = []
    prefix = str(root).rstrip("/") + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(root) or point.startswith(prefix):
            points.append(Path(point))
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def umount(point: Path) -> None:
    proc = run(["umount", point], check=False)
    if proc.returncode != 0:
        run(["umount", "-l", point], check=False)
