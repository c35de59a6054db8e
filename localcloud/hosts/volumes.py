"""Volumes of real machines: a sparse file per volume, a loop device while it is attached,
and inside the machine a block device node (sdb, sdc, ... as on Hetzner) with the link
``/dev/disk/by-id/scsi-0HC_Volume_<id>``.

udev does not run in a container and systemd ignores fstab's device entries there, so the
node and the link are made by hand: while the machine runs, from here (``nsenter -a``:
``mknod`` needs every namespace); at boot, by ``localcloud-volumes.service`` in the image,
from the table that localcloud keeps on the machine's disk (``VOLUME_TABLE``), before
systemd mounts local file systems. So, as on Hetzner, an attached volume is there when the
machine boots and its fstab entries are mounted before any service starts.

Loop devices are kernel objects that outlive localcloud: every one we set up is recorded
in /run/localcloud/loops/<loopN> (its backing file) so that cleanup after a killed run frees
ours, checked against the kernel's own record of the backing file, and nothing else.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import time
from pathlib import Path

from localcloud.hosts.system import RUN_DIR, HostError, log, run

GIB = 1 << 30
LOOPS_DIR = RUN_DIR / "loops"
MAX_DEVICES = 25  # sdb .. sdz
FORMATS = {"ext4": ["mkfs.ext4", "-F", "-q", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1"],
           "xfs": ["mkfs.xfs", "-q", "-f", "-K"]}


def by_id(volume_id: int) -> str:
    return f"/dev/disk/by-id/scsi-0HC_Volume_{volume_id}"


def mount_point(volume_id: int) -> str:
    return f"/mnt/HC_Volume_{volume_id}"


def device_name(taken: set[str]) -> str:
    """The next free device name after sda (the machine's own disk on Hetzner)."""
    for i in range(1, MAX_DEVICES + 1):
        name = "sd" + chr(ord("a") + i)
        if name not in taken:
            return name
    raise HostError(f"a machine can have at most {MAX_DEVICES} volumes")


# -- the file ------------------------------------------------------------------------------
def create_file(path: Path, size_gb: int, fmt: str | None) -> None:
    """A sparse file of ``size_gb`` GiB, with an ext4 or xfs file system when ``fmt`` says so."""
    if fmt is not None and fmt not in FORMATS:
        raise HostError(f"unknown volume format {fmt!r}; one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    try:
        with path.open("xb") as f:
            f.truncate(size_gb * GIB)
        if fmt is not None:
            run([*FORMATS[fmt], path], timeout=300)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def grow_file(path: Path, size_gb: int) -> None:
    size = path.stat().st_size
    if size_gb * GIB < size:
        raise HostError(f"volume file {path.name} is {size // GIB} GB: it cannot shrink to {size_gb} GB")
    os.truncate(path, size_gb * GIB)


def fs_type(path: Path) -> str | None:
    """The file system on a volume file (blkid), None when there is none."""
    res = run(["blkid", "-p", "-o", "value", "-s", "TYPE", path], check=False)
    return res.stdout.strip() or None


# -- loop devices --------------------------------------------------------------------------
def _back_file(text: str) -> str:
    return re.sub(r" \(deleted\)$", "", text or "")


def loop_devices() -> dict[str, str]:
    """Every loop device on this machine -> its backing file."""
    proc = run(["losetup", "-J", "-l"], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return {}
    return {str(d["name"]): _back_file(str(d.get("back-file") or ""))
            for d in json.loads(proc.stdout).get("loopdevices", [])}


def prune_records() -> None:
    """Forget recorded loop devices that are no longer over their file (a device detached while
    in use is freed by the kernel later, when its file system is released)."""
    devices = loop_devices()
    for dev, back in recorded_loops().items():
        if devices.get(dev) != back:
            (LOOPS_DIR / Path(dev).name).unlink(missing_ok=True)


def setup_loop(path: Path) -> str:
    """A new loop device over ``path`` (recorded as ours); its /dev path."""
    prune_records()
    dev = run(["losetup", "--find", "--show", path]).stdout.strip()
    LOOPS_DIR.mkdir(parents=True, exist_ok=True)
    (LOOPS_DIR / Path(dev).name).write_text(f"{path}\n")
    return dev


def refresh_loop(dev: str) -> None:
    """The loop device takes the new size of its file (after a resize)."""
    run(["losetup", "-c", dev])


def free_loop(dev: str, path: Path, timeout: float = 10) -> None:
    """Detach our loop device ``dev`` (only if it still is over ``path``) and wait until it is gone
    (a file system still being unmounted keeps it until then: the kernel clears it after)."""
    if loop_devices().get(dev) == str(path):
        run(["losetup", "-d", dev], check=False)
        deadline = time.monotonic() + timeout
        while loop_devices().get(dev) == str(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        if loop_devices().get(dev) == str(path):
            # the record stays, so that cleanup still knows the device is ours
            log.warning("loop device %s (%s) is still in use: the kernel frees it when it is closed", dev, path)
            return
    (LOOPS_DIR / Path(dev).name).unlink(missing_ok=True)


def dev_numbers(dev: str) -> tuple[int, int]:
    st = os.stat(dev)
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def in_use(dev: str) -> bool:
    """True while something holds the block device exclusively (a mounted file system does)."""
    try:
        fd = os.open(dev, os.O_RDONLY | os.O_EXCL)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return True
        raise HostError(f"cannot open {dev}: {exc.strerror}") from exc
    os.close(fd)
    return False


def recorded_loops() -> dict[str, str]:
    """Loop devices we recorded -> their backing file (records of devices gone are dropped)."""
    out: dict[str, str] = {}
    if not LOOPS_DIR.is_dir():
        return out
    for rec in LOOPS_DIR.iterdir():
        try:
            out[f"/dev/{rec.name}"] = rec.read_text().strip()
        except OSError:
            continue
    return out


def free_ours(data_dir: Path | None) -> list[str]:
    """Free the loop devices that are ours: recorded (and still over the recorded file), or over a
    file below ``data_dir``. Returns what was freed."""
    freed: list[str] = []
    devices = loop_devices()
    recorded = recorded_loops()
    for dev, back in devices.items():
        ours = recorded.get(dev) == back or (data_dir is not None and back.startswith(str(data_dir).rstrip("/") + "/"))
        if ours:
            run(["losetup", "-d", dev], check=False)
            freed.append(f"loop device {dev} ({back})")
    for dev in recorded:
        (LOOPS_DIR / Path(dev).name).unlink(missing_ok=True)
    return freed


# -- inside the machine ----------------------------------------------------------------------
VOLUME_TABLE = "var/lib/localcloud/volumes"  # on the machine's disk: "<node> <major> <minor> <volume id>" lines
BOOT_SCRIPT = """#!/bin/sh
# localcloud: attached volumes as block devices with Hetzner's by-id links (udev's job on a
# VM), then the fstab entries on devices mounted (systemd's fstab generator skips them in a
# container), before local-fs.target: services that need a volume find it mounted.
mkdir -p /dev/disk/by-id
if [ -r /@TABLE@ ]; then
    while read -r node major minor id; do
        [ -n "$id" ] || continue
        rm -f "/dev/$node"
        mknod -m660 "/dev/$node" b "$major" "$minor" && chgrp disk "/dev/$node" 2>/dev/null
        ln -sfn "../../$node" "/dev/disk/by-id/scsi-0HC_Volume_$id"
    done < /@TABLE@
fi
status=0
while read -r what where fstype options rest; do
    case "$what" in /dev/*) ;; *) continue ;; esac
    case "$fstype,$options" in swap,*|*noauto*) continue ;; esac
    [ "$where" != / ] && [ -e "$what" ] || continue
    mountpoint -q "$where" && continue
    mkdir -p "$where"
    mount "$where" || { echo "localcloud-volumes: could not mount $where" >&2; status=1; }
done < /etc/fstab
exit $status
""".replace("@TABLE@", VOLUME_TABLE)
BOOT_UNIT = """[Unit]
Description=localcloud: attached volumes and their fstab mounts (udev's job on Hetzner)
DefaultDependencies=no
Before=local-fs-pre.target local-fs.target
Wants=local-fs-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/lib/localcloud/volumes.sh
"""
# what the image carries for this (template.py installs them)
TEMPLATE_FILES: dict[str, tuple[str, int]] = {
    "usr/local/lib/localcloud/volumes.sh": (BOOT_SCRIPT, 0o755),
    "etc/systemd/system/localcloud-volumes.service": (BOOT_UNIT, 0o644),
}
TEMPLATE_LINKS: dict[str, str] = {
    "etc/systemd/system/local-fs.target.wants/localcloud-volumes.service":
        "/etc/systemd/system/localcloud-volumes.service",
}


def write_table(root: Path, attached: list[tuple[str, str, int]]) -> None:
    """The machine's volumes (device name, loop device, volume id) on its disk, for its next boot."""
    lines = []
    for node, dev, volume_id in sorted(attached):
        major, minor = dev_numbers(dev)
        lines.append(f"{node} {major} {minor} {volume_id}\n")
    path = root / VOLUME_TABLE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    tmp.replace(path)


def _nsenter(pid: int, script: str) -> None:
    run(["nsenter", "-t", str(pid), "-a", "--", "sh", "-c", script], timeout=60)


def expose(pid: int, volume_id: int, node: str, dev: str) -> None:
    """Make /dev/<node> (the loop device's numbers) and its by-id link in the running machine;
    mount it when the machine's fstab has an entry on the by-id link (systemd does not there)."""
    major, minor = dev_numbers(dev)
    link = by_id(volume_id)
    q = shlex.quote
    _nsenter(pid, f"""set -e
rm -f /dev/{node}
mknod -m660 /dev/{node} b {major} {minor}
chgrp disk /dev/{node} 2>/dev/null || true
mkdir -p /dev/disk/by-id
ln -sfn ../../{node} {q(link)}
target=$(awk -v l={q(link)} '$1 == l {{print $2; exit}}' /etc/fstab 2>/dev/null || true)
if [ -n "$target" ] && ! mountpoint -q "$target"; then mkdir -p "$target"; mount "$target"; fi
""")


def unexpose(pid: int, volume_id: int, node: str) -> None:
    _nsenter(pid, f"rm -f /dev/{node} {shlex.quote(by_id(volume_id))}")


def mounted_at(pid: int | None, dev: str) -> list[str]:
    """Where the machine (its init's mount namespace) has the device mounted."""
    if pid is None:
        return []
    major, minor = dev_numbers(dev)
    try:
        lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    except OSError:
        return []
    return [line.split()[4] for line in lines if line.split()[2] == f"{major}:{minor}"]


def lazy_unmount(pid: int | None, point: str) -> None:
    """Unmount ``point`` in the machine at once (``umount -l``, inside all its namespaces so
    that the path is the machine's)."""
    if pid is not None:
        _nsenter(pid, f"umount -l {shlex.quote(point)}")


def add_fstab(root: Path, volume_id: int, fstype: str) -> None:
    """Hetzner's automount entry, in the machine's /etc/fstab (its disk, seen from here)."""
    fstab = root / "etc" / "fstab"
    link = by_id(volume_id)
    try:
        lines = fstab.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    lines = [ln for ln in lines if not (ln.split() and ln.split()[0] == link)]
    lines.append(f"{link} {mount_point(volume_id)} {fstype} discard,nofail,defaults 0 0")
    fstab.parent.mkdir(parents=True, exist_ok=True)
    fstab.write_text("\n".join(lines) + "\n")
    (root / mount_point(volume_id).lstrip("/")).mkdir(parents=True, exist_ok=True)
