"""Volumes on this machine (``--hosts nspawn``): their files in the data directory and their
attachments to machines (a loop device over the file, shown in the machine as /dev/sdX and
listed in the volume table its boot reads). The file and loop device work is ``volumes.py``."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from localcloud.hosts import volumes as vols
from localcloud.hosts.machine import Machine
from localcloud.hosts.system import HostError, log


@dataclass
class Attachment:
    """A volume attached to a machine: its loop device and its device name in the machine."""

    volume_id: int
    server_id: int
    loop: str
    node: str


class VolumeDisks:
    """The volume files under ``volumes_dir`` and which machine each is attached to."""

    def __init__(self, volumes_dir: Path, machines: dict[int, Machine]) -> None:
        self.volumes_dir = volumes_dir
        self.machines = machines  # the backend's own dict: server id -> its machine
        self.attachments: dict[int, Attachment] = {}  # volume id -> its attachment
        self._volumes = threading.RLock()  # attachments change in jobs and in boot watchers

    def volume_file(self, volume_id: int) -> Path:
        return self.volumes_dir / f"{volume_id}.img"

    def create_volume(self, volume_id: int, size_gb: int, fmt: str | None = None) -> None:
        """A sparse file of size_gb GiB; ext4 or xfs made on it when ``fmt`` says so."""
        vols.create_file(self.volume_file(volume_id), size_gb, fmt)

    def attach_volume(self, m: Machine, volume_id: int, automount: bool = False) -> str:
        """Loop device over the volume's file, shown in the machine as /dev/sdX with its by-id
        link (now if it runs, else at its next boot); with ``automount`` an fstab entry and a
        mount at /mnt/HC_Volume_<id>. Returns the device name (sdb, ...)."""
        server_id = m.server_id
        path = self.volume_file(volume_id)
        if not path.is_file():
            raise HostError(f"volume {volume_id} has no disk file")
        with self._volumes:
            a = self.attachments.get(volume_id)
            if a is not None and a.server_id != server_id:
                raise HostError(f"volume {volume_id} is still attached to server {a.server_id}")
            if a is None:
                if str(path) in vols.loop_devices().values():
                    # detached while in use: the old file system lives on until its last file is
                    # closed; a second loop device would mount the same disk twice and corrupt it
                    raise HostError(f"volume {volume_id} is still in use where it was detached from (its file "
                                    "system was busy): stop what uses it, or reboot that server, then attach again")
                taken = {x.node for x in self.attachments.values() if x.server_id == server_id}
                a = Attachment(volume_id, server_id, vols.setup_loop(path), vols.device_name(taken))
                self.attachments[volume_id] = a
            try:
                if automount:
                    fstype = vols.fs_type(path)
                    if fstype is None:
                        raise HostError(f"volume {volume_id} has no file system to mount (create it with a format)")
                    vols.add_fstab(m.merged, volume_id, fstype)
                self.write_volume_table(server_id)
                pid = m.init_pid() if m.running() else None
                if pid is not None:
                    vols.expose(pid, volume_id, a.node, a.loop)
            except BaseException:
                self._release(a, pid=None)
                raise
            return a.node

    def detach_volume(self, m: Machine, volume_id: int) -> None:
        """Remove the device and its link from the machine and free the loop device.

        Hetzner pulls the disk whatever the guest is doing (its API cannot see inside), so a
        mounted volume is detached too: its mounts in the machine are lazily unmounted (gone
        from the machine at once; processes with open files keep them until they close them,
        and the kernel frees the loop device then)."""
        server_id = m.server_id
        with self._volumes:
            a = self.attachments.get(volume_id)
            if a is None or a.server_id != server_id:
                raise HostError(f"volume {volume_id} is not attached to server {server_id}")
            pid = m.init_pid() if m.running() else None
            busy = vols.in_use(a.loop)
            if busy:
                points = vols.mounted_at(pid, a.loop)
                log.warning("server %s: volume %s detached while in use (%s), as Hetzner would",
                            server_id, volume_id, ", ".join(points) or "held by a process")
                for point in points:
                    vols.lazy_unmount(pid, point)
            self._release(a, pid, wait=5 if busy else 10)

    def _release(self, a: Attachment, pid: int | None, wait: float = 10) -> None:
        if pid is not None:
            vols.unexpose(pid, a.volume_id, a.node)
        vols.free_loop(a.loop, self.volume_file(a.volume_id), timeout=wait)
        self.attachments.pop(a.volume_id, None)
        self.write_volume_table(a.server_id)

    def write_volume_table(self, server_id: int) -> None:
        """The machine's attached volumes on its disk: its boot makes their devices and mounts
        them before any service starts, as a VM finds its disks at boot on Hetzner."""
        m = self.machines.get(server_id)
        if m is None or not m.mounted():
            return
        with self._volumes:
            vols.write_table(m.merged, [(a.node, a.loop, a.volume_id) for a in self.attachments.values()
                                        if a.server_id == server_id])

    def expose_all(self, server_id: int) -> None:
        """After every boot, for machines from images older than localcloud-volumes.service (the
        image makes the devices itself, earlier): the machine's /dev is new, so its volumes are
        shown again (and their fstab entries mounted)."""
        m = self.machines.get(server_id)
        if m is None:
            return
        with self._volumes:
            pid = m.init_pid()
            if pid is None:
                return
            for a in [a for a in self.attachments.values() if a.server_id == server_id]:
                vols.expose(pid, a.volume_id, a.node, a.loop)

    def free_server(self, server_id: int) -> None:
        """The machine is gone: its volumes' loop devices are freed; the volumes stay, detached."""
        with self._volumes:
            for a in [a for a in self.attachments.values() if a.server_id == server_id]:
                vols.free_loop(a.loop, self.volume_file(a.volume_id))
                del self.attachments[a.volume_id]

    def free_all(self) -> None:
        """Every loop device freed (the machines are off and unmounted: stop)."""
        with self._volumes:
            for a in list(self.attachments.values()):
                vols.free_loop(a.loop, self.volume_file(a.volume_id))
            self.attachments.clear()

    def resize_volume(self, volume_id: int, size_gb: int) -> None:
        """Grow the file; an attached volume's device grows at once (the file system does not)."""
        with self._volumes:
            vols.grow_file(self.volume_file(volume_id), size_gb)
            a = self.attachments.get(volume_id)
            if a is not None:
                vols.refresh_loop(a.loop)

    def delete_volume(self, volume_id: int) -> None:
        with self._volumes:
            a = self.attachments.get(volume_id)
            if a is not None:
                raise HostError(f"volume {volume_id} is attached to server {a.server_id}")
            self.volume_file(volume_id).unlink(missing_ok=True)

    def delete_all_volumes(self) -> None:
        """Every volume file, attached ones freed first (the side door's reset)."""
        with self._volumes:
            for a in list(self.attachments.values()):
                m = self.machines.get(a.server_id)
                self._release(a, m.init_pid() if m is not None and m.running() else None)
            for f in self.volumes_dir.glob("*.img"):
                f.unlink(missing_ok=True)

    def prune_volumes(self, keep: set[int]) -> None:
        """Remove the files of volumes that no longer exist (after a restart)."""
        for f in self.volumes_dir.glob("*.img") if self.volumes_dir.is_dir() else []:
            if f.stem.isdigit() and int(f.stem) not in keep and int(f.stem) not in self.attachments:
                f.unlink(missing_ok=True)
