"""The hosts backend: servers as real Debian machines (``--hosts nspawn``).

One :class:`Hosts` per machine (a lock under /run/localcloud makes sure of it): start
removes leftovers of a killed earlier run, makes the public bridge and starts the apt
proxy; its methods make, power, re-network, rebuild, snapshot and destroy machines; stop
powers every machine off cleanly and removes what it made. Methods block (a boot takes
about a second, a template build about a minute): callers run them off the event loop.
"""

from __future__ import annotations

import fcntl
import functools
import ipaddress
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from localcloud.config import ADMIN_ADDRESS
from localcloud.hosts import cleanup, cloudinit, firewall, network, snapshot, template
from localcloud.hosts import loadbalancer as lbs
from localcloud.hosts import volumes as vols
from localcloud.hosts.aptproxy import AptProxy
from localcloud.hosts.machine import Machine
from localcloud.hosts.system import RUN_DIR, HostError, log, why_unsupported
from localcloud.machines import Guarded, ImageRef, LbSpec, PrivateNic, ServerSpec

DEFAULT_DATA = Path("/var/lib/localcloud/hosts")
DEFAULT_CACHE = Path("/var/cache/localcloud")
POWER_OPS = ("poweron", "poweroff", "shutdown", "reboot", "reset")


@dataclass
class Attachment:
    """A volume attached to a machine: its loop device and its device name in the machine."""

    volume_id: int
    server_id: int
    loop: str
    node: str


class Hosts:
    def __init__(self, data_dir: Path = DEFAULT_DATA, cache_dir: Path = DEFAULT_CACHE,
                 boot_timeout: float = 120, shutdown_timeout: float = 30) -> None:
        self.data_dir = data_dir
        self.cache_dir = cache_dir
        self.boot_timeout = boot_timeout
        self.shutdown_timeout = shutdown_timeout
        self.proxy = AptProxy(ADMIN_ADDRESS, cache_dir / "apt")
        self.machines: dict[int, Machine] = {}
        self.specs: dict[int, ServerSpec] = {}
        self.usable_pools: list[str] = list(network.PUBLIC_POOLS)
        self.unusable_pools: list[str] = []
        self.removed_at_start: list[str] = []
        self._lock_file: IO[str] | None = None
        self._templates = threading.Lock()
        self.attachments: dict[int, Attachment] = {}  # volume id -> its attachment
        self._volumes = threading.RLock()  # attachments change in jobs and in boot watchers
        self._keep_disks = False
        self.firewalls: tuple[Guarded, ...] | None = None  # what the nft table holds now
        self.balancers: dict[int, lbs.Balancer] = {}  # load balancer id -> its namespace and HAProxy
        self._lb_health: dict[int, dict[int, dict[str, str]]] = {}  # polled from HAProxy, read by the API
        self._lb_poller: threading.Thread | None = None
        self._lb_stop = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def machines_dir(self) -> Path:
        return self.data_dir / "machines"

    @property
    def images_dir(self) -> Path:
        return self.data_dir / "images"

    @property
    def volumes_dir(self) -> Path:
        return self.data_dir / "volumes"

    @property
    def templates_dir(self) -> Path:
        return self.cache_dir / "templates"

    def start(self, keep_disks: bool = False) -> None:
        """Take the lock, remove leftovers, make the public bridge, start the apt proxy."""
        reason = why_unsupported()
        if reason is not None:
            raise HostError(reason)
        self._take_lock()
        try:
            self.removed_at_start = cleanup.leftovers(self.data_dir)
            self._keep_disks = keep_disks
            if not keep_disks:
                shutil.rmtree(self.machines_dir, ignore_errors=True)
                shutil.rmtree(self.volumes_dir, ignore_errors=True)
            self.machines_dir.mkdir(parents=True, exist_ok=True)
            self.volumes_dir.mkdir(parents=True, exist_ok=True)
            self.images_dir.mkdir(parents=True, exist_ok=True)
            if network.ip_forwarding():
                log.warning("net.ipv4.ip_forward is 1 on this machine; localcloud neither needs nor changes it")
            avoid = network.resolve_all(["deb.debian.org"]) + network.nameservers()
            self.unusable_pools = network.conflicting_pools(avoid=avoid)
            self.usable_pools = [p for p in network.PUBLIC_POOLS if p not in self.unusable_pools]
            if network.PUBLIC_POOLS[0] in self.unusable_pools:
                raise HostError(f"this machine already uses {network.PUBLIC_POOLS[0]} (ADMIN_ADDRESS {ADMIN_ADDRESS}"
                                " is in it): real hosts cannot run here")
            for pool in self.unusable_pools:
                log.warning("public pool %s overlaps this machine's own networks: not used", pool)
            firewall.ensure_bridge_filtering()  # before any server: firewalls must never fail open
            network.ensure_public_bridge(self.usable_pools)
            self.proxy.start()
        except BaseException:
            self.stop()
            raise

    def _take_lock(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        f = (RUN_DIR / "hosts.lock").open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "?"
            f.close()
            raise HostError(f"another localcloud with real hosts is running (pid {owner}); stop it first "
                            "(invoke localcloud.down)") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._lock_file = f

    def stop(self) -> list[int]:
        """Power every machine off cleanly (in parallel), then remove what was made; returns
        the servers whose machine did not shut down in time and had its power cut."""
        machines = list(self.machines.values())
        cut: list[int] = []
        if machines:
            with ThreadPoolExecutor(max_workers=min(16, len(machines))) as pool:
                clean = list(pool.map(lambda m: m.shutdown(self.shutdown_timeout), machines))
            cut = [m.server_id for m, ok in zip(machines, clean, strict=True) if not ok]
        for m in machines:
            m.unmount()
        self.machines.clear()
        with self._volumes:
            for a in list(self.attachments.values()):
                vols.free_loop(a.loop, self.volume_file(a.volume_id))
            self.attachments.clear()
        if not self._keep_disks:
            shutil.rmtree(self.volumes_dir, ignore_errors=True)
        self._lb_stop.set()
        if self._lb_poller is not None:
            self._lb_poller.join(timeout=5)
            self._lb_poller = None
        for lb_id in list(self.balancers):
            self.delete_load_balancer(lb_id)
        self.proxy.stop()
        self.firewalls = None  # the table goes with the leftovers below
        if self._lock_file is not None:
            cleanup.leftovers(None, "")  # namespaces, veths, bridges, cgroups: nothing of ours stays
            self._lock_file.close()
            self._lock_file = None
        return cut

    # -- images ----------------------------------------------------------------------------
    def template(self, name: str | None = None) -> template.Template:
        with self._templates:
            return template.ensure(name or template.DEFAULT_IMAGE, self.proxy.mirror, self.proxy.url,
                                   self.templates_dir, keep={p.parent for p in self.lowers_in_use()})

    def _lowers(self, image: ImageRef) -> list[Path]:
        if image.snapshot is not None:
            return [snapshot.rootfs(self.images_dir, image.snapshot)]
        return [self.template(image.name).rootfs]

    # -- machines --------------------------------------------------------------------------
    def machine(self, server_id: int) -> Machine:
        m = self.machines.get(server_id)
        if m is None:
            raise HostError(f"server {server_id} has no machine")
        return m

    def create(self, spec: ServerSpec, *, keep_disk: bool = False) -> Machine:
        """Network namespace, addresses, disk (seeded for the first boot). Does not boot."""
        lowers = self._lowers(spec.image)
        sid = spec.server_id
        if sid in self.machines:
            raise HostError(f"server {sid} already has a machine")
        machine = Machine(sid, self.machines_dir / str(sid), spec.hostname, spec.ipv4)
        machine.on_boot = functools.partial(self._expose_all, sid)
        try:
            network.create_netns(sid)
            network.set_public(sid, self._usable(spec.ipv4), spec.ipv6_net, self.usable_pools)
            for nic in spec.private:
                network.attach_private(sid, nic)
            fresh = not (keep_disk and (machine.dir / "upper").is_dir())
            if fresh:
                shutil.rmtree(machine.dir, ignore_errors=True)
            machine.mount(machine.lowers() if not fresh and machine.lowers() else lowers)
            if fresh:
                self._seed(machine, spec)
        except BaseException:
            if keep_disk:
                machine.poweroff()
                machine.unmount()  # a kept disk stays for the next try
            else:
                machine.destroy()
            network.delete_netns(sid)
            raise
        self.machines[sid] = machine
        self.specs[sid] = spec
        self._write_volume_table(sid)  # a kept disk's table is stale: its volumes are attached again
        return machine

    def _usable(self, ipv4: str | None) -> str | None:
        if ipv4 is not None and any(ipaddress.ip_address(ipv4) in ipaddress.ip_network(p)
                                    for p in self.unusable_pools):
            log.warning("public IPv4 %s is in an unusable pool: the machine gets no public IPv4", ipv4)
            return None
        return ipv4

    def _seed(self, machine: Machine, spec: ServerSpec) -> None:
        cloudinit.seed(machine.merged, hostname=spec.hostname, ssh_keys=spec.ssh_keys, user_data=spec.user_data,
                       proxy_url=self.proxy.url)

    def boot(self, server_id: int) -> float:
        return self.machine(server_id).start(self.boot_timeout)

    def power(self, server_id: int, op: str) -> float:
        """poweron, poweroff, shutdown, reboot or reset, as the API's server actions; seconds taken."""
        m = self.machine(server_id)
        started = time.monotonic()
        if op == "poweron":
            m.start(self.boot_timeout)
        elif op == "poweroff":
            m.poweroff()
        elif op == "shutdown":
            m.shutdown(self.shutdown_timeout)
        elif op == "reboot":
            m.reboot(self.boot_timeout)
        elif op == "reset":
            m.reset(self.boot_timeout)
        else:
            raise HostError(f"unknown power operation {op!r}; one of {', '.join(POWER_OPS)}")
        return time.monotonic() - started

    def attach_network(self, server_id: int, nic: PrivateNic) -> str:
        self.machine(server_id)
        name = network.attach_private(server_id, nic)
        spec = self.specs[server_id]
        spec.private = [n for n in spec.private if n.network_id != nic.network_id] + [nic]
        return name

    def detach_network(self, server_id: int, network_id: int) -> None:
        self.machine(server_id)
        network.detach_private(server_id, network_id)
        spec = self.specs[server_id]
        spec.private = [n for n in spec.private if n.network_id != network_id]
        network.remove_unused_network_bridges()

    def set_public(self, server_id: int, ipv4: str | None, ipv6_net: str | None) -> None:
        """New public addresses (primary IPs assigned or unassigned)."""
        m = self.machine(server_id)
        network.set_public(server_id, self._usable(ipv4), ipv6_net, self.usable_pools)
        m.ssh_address = self._usable(ipv4)
        spec = self.specs[server_id]
        spec.ipv4, spec.ipv6_net = ipv4, ipv6_net

    def set_firewalls(self, guarded: list[Guarded]) -> None:
        """The cloud firewalls' filters for these servers (the whole set; unchanged: nothing done)."""
        wanted = tuple(sorted(guarded, key=lambda g: g.server_id))
        if wanted != self.firewalls:
            firewall.apply(wanted)
            self.firewalls = wanted

    # -- load balancers --------------------------------------------------------------------
    def set_load_balancer(self, spec: LbSpec) -> None:
        """Make the load balancer (namespace, links, HAProxy) match ``spec``; idempotent."""
        balancer = self.balancers.get(spec.lb_id)
        if balancer is None:
            balancer = self.balancers[spec.lb_id] = lbs.Balancer(spec.lb_id)
        balancer.apply(replace(spec, ipv4=self._usable(spec.ipv4)), self.usable_pools)
        self._start_lb_poller()

    def delete_load_balancer(self, lb_id: int) -> None:
        balancer = self.balancers.pop(lb_id, None) or lbs.Balancer(lb_id)
        self._lb_health.pop(lb_id, None)
        balancer.remove()
        network.remove_unused_network_bridges()

    def load_balancer_health(self, lb_id: int) -> dict[int, dict[str, str]] | None:
        """listen port -> target name -> healthy/unhealthy/unknown, as last polled (None: not yet).
        Never blocks: the API renders from this on its event loop."""
        return self._lb_health.get(lb_id)

    def _start_lb_poller(self) -> None:
        if self._lb_poller is None or not self._lb_poller.is_alive():
            self._lb_stop.clear()
            self._lb_poller = threading.Thread(target=self._poll_lb_health, name="lb-health", daemon=True)
            self._lb_poller.start()

    def _poll_lb_health(self, interval: float = 1.0) -> None:
        """About once a second: every load balancer's health checks, from HAProxy's stats socket."""
        while not self._lb_stop.wait(interval):
            for gone in set(self._lb_health) - set(self.balancers):
                self._lb_health.pop(gone, None)
            for lb_id, balancer in list(self.balancers.items()):
                if not balancer.running():
                    self._lb_health.pop(lb_id, None)
                    continue
                try:
                    fresh = balancer.stats()
                except OSError:
                    continue  # reloading: keep the last result
                old = self._lb_health.get(lb_id, {})
                for port, targets in fresh.items():  # a reload restarts checks: keep what was known
                    for name, health in targets.items():
                        if health == lbs.UNKNOWN and old.get(port, {}).get(name, lbs.UNKNOWN) != lbs.UNKNOWN:
                            targets[name] = old[port][name]
                if lb_id in self.balancers:
                    self._lb_health[lb_id] = fresh  # one assignment: readers see old or new, whole

    def rebuild(self, server_id: int, image: ImageRef, *, ssh_keys: list[str] | None = None,
                user_data: str | None = None, boot: bool = True) -> None:
        """A new disk from ``image`` (a first boot again: keys, user_data), then boot."""
        m = self.machine(server_id)
        lowers = self._lowers(image)
        spec = self.specs[server_id]
        spec.image = image
        if ssh_keys is not None:
            spec.ssh_keys = ssh_keys
        spec.user_data = user_data
        m.poweroff()
        m.wipe()
        m.mount(lowers)
        snapshot.collect(self.images_dir, self.lowers_in_use())
        self._seed(m, spec)
        if boot:
            m.start(self.boot_timeout)

    def snapshot(self, server_id: int, image_id: int) -> int:
        """Copy the machine's disk into the image store; its size in bytes."""
        m = self.machine(server_id)
        return snapshot.create(m.merged, self.images_dir, image_id, {"server": server_id})

    def delete_image(self, image_id: int) -> None:
        snapshot.delete(self.images_dir, image_id, self.lowers_in_use())

    def lowers_in_use(self) -> set[Path]:
        """Every lower layer (template or snapshot) a machine's disk is made over, kept disks included."""
        used: set[Path] = set()
        for disk in self.machines_dir.glob("*/disk.json") if self.machines_dir.is_dir() else []:
            used.update(Machine(0, disk.parent, "").lowers())
        return used

    def destroy(self, server_id: int) -> None:
        """Power off and remove the machine: disk, cgroups, namespace, veths, its addresses."""
        m = self.machines.pop(server_id, None)
        self.specs.pop(server_id, None)
        if m is None:
            m = Machine(server_id, self.machines_dir / str(server_id), "gone")
        m.destroy()
        with self._volumes:  # its volumes stay, detached (the machine is gone: nothing mounts them)
            for a in [a for a in self.attachments.values() if a.server_id == server_id]:
                vols.free_loop(a.loop, self.volume_file(a.volume_id))
                del self.attachments[a.volume_id]
        network.delete_netns(server_id)
        network.remove_unused_network_bridges()
        snapshot.collect(self.images_dir, self.lowers_in_use())

    def prune_disks(self, keep: set[int]) -> None:
        """Remove the kept disks of servers that no longer exist (after a restart)."""
        if not self.machines_dir.is_dir():
            return
        for disk in self.machines_dir.iterdir():
            if disk.name.isdigit() and int(disk.name) not in keep and int(disk.name) not in self.machines:
                Machine(int(disk.name), disk, "gone").destroy()

    def remove_network(self, network_id: int) -> None:
        """A deleted network: detach every machine on it and remove its bridge."""
        for sid, spec in list(self.specs.items()):
            if any(n.network_id == network_id for n in spec.private):
                self.detach_network(sid, network_id)
        network.remove_network_bridge(network_id)

    # -- volumes -----------------------------------------------------------------------------
    def volume_file(self, volume_id: int) -> Path:
        return self.volumes_dir / f"{volume_id}.img"

    def create_volume(self, volume_id: int, size_gb: int, fmt: str | None = None) -> None:
        """A sparse file of size_gb GiB; ext4 or xfs made on it when ``fmt`` says so."""
        vols.create_file(self.volume_file(volume_id), size_gb, fmt)

    def attach_volume(self, server_id: int, volume_id: int, automount: bool = False) -> str:
        """Loop device over the volume's file, shown in the machine as /dev/sdX with its by-id
        link (now if it runs, else at its next boot); with ``automount`` an fstab entry and a
        mount at /mnt/HC_Volume_<id>. Returns the device name (sdb, ...)."""
        m = self.machine(server_id)
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
                self._write_volume_table(server_id)
                pid = m.init_pid() if m.running() else None
                if pid is not None:
                    vols.expose(pid, volume_id, a.node, a.loop)
            except BaseException:
                self._release(a, pid=None)
                raise
            return a.node

    def detach_volume(self, server_id: int, volume_id: int) -> None:
        """Remove the device and its link from the machine and free the loop device.

        Hetzner pulls the disk whatever the guest is doing (its API cannot see inside), so a
        mounted volume is detached too: its mounts in the machine are lazily unmounted (gone
        from the machine at once; processes with open files keep them until they close them,
        and the kernel frees the loop device then)."""
        m = self.machine(server_id)
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
        self._write_volume_table(a.server_id)

    def _write_volume_table(self, server_id: int) -> None:
        """The machine's attached volumes on its disk: its boot makes their devices and mounts
        them before any service starts, as a VM finds its disks at boot on Hetzner."""
        m = self.machines.get(server_id)
        if m is None or not m.mounted():
            return
        with self._volumes:
            vols.write_table(m.merged, [(a.node, a.loop, a.volume_id) for a in self.attachments.values()
                                        if a.server_id == server_id])

    def _expose_all(self, server_id: int) -> None:
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
