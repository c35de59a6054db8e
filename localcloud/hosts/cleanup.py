"""Remove what an earlier, killed run left behind, recognised by localcloud's names only.

Kernel objects outlive the process that made them: after ``kill -9`` of localcloud its
machines may still run, and namespaces, bridges, veths, overlay mounts, loop devices,
cgroups and nft tables remain. Start calls :func:`leftovers` (holding the hosts lock, so
no other live localcloud owns them) before it makes anything.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from localcloud.hosts import volumes
from localcloud.hosts.system import (
    NFT_PREFIX,
    OUR_LINK,
    OUR_NETNS,
    RUN_DIR,
    all_cgroup_roots,
    forget_process,
    kill,
    kill_cgroup,
    log,
    mounts_below,
    overlay_mounts,
    recorded_processes,
    remove_cgroup_tree,
    run,
    umount,
    wait_gone,
)


def leftovers(data_dir: Path | None = None, what: str = "leftover") -> list[str]:
    """Remove leftovers; returns what was removed, one entry per object (for logs and tests)."""
    removed: list[str] = []
    procs = recorded_processes()
    for name, pid in procs.items():
        kill(pid, signal.SIGTERM if name == "apt-cacher-ng" else signal.SIGKILL)
        removed.append(f"process {name} ({pid})")
    wait_gone(list(procs.values()), 5)
    for name, pid in procs.items():
        kill(pid)
        forget_process(name)
    for root in all_cgroup_roots():
        for cg in sorted(p for p in root.iterdir() if p.is_dir()):
            kill_cgroup(cg)
            remove_cgroup_tree(cg)
            removed.append(f"cgroup {cg}")
        remove_cgroup_tree(root)  # localcloud/ itself, once empty
    for source, point in overlay_mounts().items():
        umount(point)
        removed.append(f"mount {source} on {point}")
    if data_dir is not None:
        for point in mounts_below(data_dir / "machines"):
            umount(point)
            removed.append(f"mount {point}")
    for ns in run(["ip", "netns", "list"]).stdout.split("\n"):
        name = ns.split(" ")[0]
        if OUR_NETNS.match(name):
            if name.startswith("lc-lb"):  # HAProxy workers leave when their master dies: maybe not yet
                pids = [int(p) for p in run(["ip", "netns", "pids", name], check=False).stdout.split() if p.isdigit()]
                for pid in pids:
                    kill(pid)
                wait_gone(pids, 5)
            run(["ip", "netns", "del", name], check=False)
            removed.append(f"netns {name}")
    links = json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")
    for link in sorted(links, key=lambda x: x["ifname"].startswith("lc-")):  # veths before bridges
        name = link["ifname"].split("@")[0]
        if OUR_LINK.match(name):
            run(["ip", "link", "del", name], check=False)
            removed.append(f"link {name}")
    removed += _loop_devices(data_dir)
    if (RUN_DIR / "lb").is_dir():  # load balancers' configs and sockets
        shutil.rmtree(RUN_DIR / "lb", ignore_errors=True)
    removed += _nft_tables()
    for entry in removed:
        log.info("cleanup: removed %s", f"{what} {entry}".strip())
    return removed


def _loop_devices(data_dir: Path | None) -> list[str]:
    """Our loop devices only: recorded when made (and still over the recorded file), or over a
    file below the hosts' data directory. Nobody else's loop device is touched."""
    return volumes.free_ours(data_dir)


def _nft_tables() -> list[str]:
    proc = run(["nft", "-j", "list", "tables"], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return []
    out = []
    for item in json.loads(proc.stdout).get("nftables", []):
        table = item.get("table")
        if table and str(table.get("name", "")).startswith(NFT_PREFIX):
            run(["nft", "delete", "table", table["family"], table["name"]], check=False)
            out.append(f"nft table {table['family']} {table['name']}")
    return out
