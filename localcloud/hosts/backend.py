"""The hosts backend: servers as real Debian machines (``--hosts nspawn``).

One :class:`Hosts` per machine (a lock under /run/localcloud makes sure of it): start
removes leftovers of a killed earlier run, makes the public bridge and starts the apt
proxy; its methods make, power, re-network, rebuild, snapshot and destroy machines; stop
powers every machine off cleanly and removes what it made. Methods block (a boot takes
about a second, a template build about a minute): callers run them off the event loop.
Volumes are :class:`~localcloud.hosts.disks.VolumeDisks`, load balancers
:class:`~localcloud.hosts.balancers.LoadBalancers`; :class:`Hosts` hands their requests on.
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
from dataclasses import replace
from pathlib import Path
from typing import IO

from localcloud.config import ADMIN_ADDRESS
from localcloud.hosts import cleanup, cloudinit, firewall, network, snapshot, template
from localcloud.hosts import loadbalancer as lbs
from localcloud.hosts.aptproxy import AptProxy
from localcloud.hosts.balancers import LoadBalancers
from localcloud.hosts.disks import VolumeDisks
from localcloud.hosts.machine import Machine
from localcloud.hosts.system import RUN_DIR, HostError, log, why_unsupported
from localcloud.machines import Guarded, ImageRef, LbSpec, PrivateNic, ServerSpec

DEFAULT_DATA = Path("/var/lib/localcloud/hosts")
DEFAULT_CACHE = Path("/var/cache/localcloud")
POWER_OPS = ("poweron", "poweroff", "shutdown", "reboot", "reset")


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
        self.volumes = VolumeDisks(self.volumes_dir, self.machines)
        self._keep_disks = False
        self.firewalls: tuple[Guarded, ...] | None = None  # what the nft table holds now
        self.load_balancers = LoadBalancers()

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
        self.volumes.free_all()
        if not self._keep_disks:
            shutil.rmtree(self.volumes_dir, ignore_errors=True)
        self.load_balancers.stop()
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
        machine.on_boot = functools.partial(self.volumes.expose_all, sid)
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
        self.volumes.write_volume_table(sid)  # a kept disk's table is stale: its volumes are attached again
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
    @property
    def balancers(self) -> dict[int, lbs.Balancer]:
        """Load balancer id -> its namespace and HAProxy."""
        return self.load_balancers.balancers

    def set_load_balancer(self, spec: LbSpec) -> None:
        self.load_balancers.set_load_balancer(replace(spec, ipv4=self._usable(spec.ipv4)), self.usable_pools)

    def delete_load_balancer(self, lb_id: int) -> None:
        self.load_balancers.delete_load_balancer(lb_id)

    def load_balancer_health(self, lb_id: int) -> dict[int, dict[str, str]] | None:
        return self.load_balancers.load_balancer_health(lb_id)

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
        self.volumes.free_server(server_id)  # its volumes stay, detached (the machine is gone: nothing mounts them)
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
        return self.volumes.volume_file(volume_id)

    def create_volume(self, volume_id: int, size_gb: int, fmt: str | None = None) -> None:
        self.volumes.create_volume(volume_id, size_gb, fmt)

    def attach_volume(self, server_id: int, volume_id: int, automount: bool = False) -> str:
        return self.volumes.attach_volume(self.machine(server_id), volume_id, automount)

    def detach_volume(self, server_id: int, volume_id: int) -> None:
        self.volumes.detach_volume(self.machine(server_id), volume_id)

    def resize_volume(self, volume_id: int, size_gb: int) -> None:
        self.volumes.resize_volume(volume_id, size_gb)

    def delete_volume(self, volume_id: int) -> None:
        self.volumes.delete_volume(volume_id)

    def delete_all_volumes(self) -> None:
        self.volumes.delete_all_volumes()

    def prune_volumes(self, keep: set[int]) -> None:
        self.volumes.prune_volumes(keep)
