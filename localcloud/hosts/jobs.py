"""``--hosts nspawn``: the machine side the API is handed (:class:`NspawnMachines`).

Each request of the API (``localcloud.machines.Machines``) queues a job for the hosts
backend (:class:`~localcloud.hosts.backend.Hosts`) on a worker thread, one queue per server
(volume, load balancer, ...) so that its jobs run in the order the API made them, and
returns the job's future; the API ties its action to it. The event loop never waits for a
machine. Nothing here reads the API's documents: requests come in the shapes of
``localcloud.machines``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from localcloud.hosts.backend import Hosts
from localcloud.machines import Guarded, ImageRef, Job, LbSpec, PrivateNic, ServerSpec

log = logging.getLogger("localcloud.hosting")


class HostJobs:
    """Jobs for the hosts backend, serial per key (a server), parallel across keys."""

    def __init__(self, workers: int = 32) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hostjob")
        self._last: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def submit(self, key: str | Sequence[str], fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` after the jobs submitted before on ``key`` (or on each of several keys:
        a volume's job on a server waits for both)."""
        keys = [key] if isinstance(key, str) else list(key)
        with self._lock:
            previous = [f for k in dict.fromkeys(keys) if (f := self._last.get(k)) is not None]
            future = self._pool.submit(self._run, previous, "+".join(keys), fn, args)
            for k in keys:
                self._last[k] = future
        return future

    @staticmethod
    def _run(previous: list[Future[Any]], key: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        for before in previous:
            with contextlib.suppress(Exception):  # its failure is its own action's
                before.result()  # FIFO: every earlier job already has a worker, this cannot deadlock
        try:
            return fn(*args)
        except Exception as exc:
            log.warning("host job %s %s failed: %s", key, getattr(fn, "__name__", fn), exc)
            raise

    def pending(self) -> list[Future[Any]]:
        with self._lock:
            return list(self._last.values())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _key(server_id: int) -> str:
    return f"server-{server_id}"


def _vkey(volume_id: int) -> str:
    return f"volume-{volume_id}"


def _lbkey(lb_id: int) -> str:
    return f"lb-{lb_id}"


class NspawnMachines:
    """The API's requests as jobs for real machines (``localcloud.machines.Machines``)."""

    real = True

    def __init__(self, hosts: Hosts, workers: int = 32) -> None:
        self.hosts = hosts
        self.jobs = HostJobs(workers)

    @property
    def unusable_ipv4_pools(self) -> frozenset[str]:
        return frozenset(self.hosts.unusable_pools)

    def machine_count(self) -> int | None:
        return len(self.hosts.machines)

    # -- servers ---------------------------------------------------------------------------------
    def create_server(self, spec: ServerSpec, *, keep_disk: bool = False) -> Job:
        """Make the machine (networks included); ``keep_disk``: its disk from before a restart."""
        create = functools.partial(self.hosts.create, keep_disk=True) if keep_disk else self.hosts.create
        return self.jobs.submit(_key(spec.server_id), create, spec)

    def boot(self, server_id: int) -> Job:
        return self.jobs.submit(_key(server_id), self.hosts.boot, server_id)

    def delete_server(self, server_id: int, volume_ids: list[int]) -> Job:
        """Destroy the machine; its volumes (detached by the API) are freed with it, before any
        later job on them (an attach to another server) runs."""
        keys = [_key(server_id), *(_vkey(v) for v in volume_ids)]
        return self.jobs.submit(keys, self.hosts.destroy, server_id)

    def power(self, server_id: int, op: str) -> Job:
        return self.jobs.submit(_key(server_id), self.hosts.power, server_id, op)

    def rebuild(self, server_id: int, image: ImageRef, ssh_keys: list[str], user_data: str | None) -> Job:
        rebuild = functools.partial(self.hosts.rebuild, ssh_keys=ssh_keys, user_data=user_data)
        return self.jobs.submit(_key(server_id), rebuild, server_id, image)

    def set_public(self, server_id: int, ipv4: str | None, ipv6_net: str | None) -> Job:
        return self.jobs.submit(_key(server_id), self.hosts.set_public, server_id, ipv4, ipv6_net)

    def attach_network(self, server_id: int, nic: PrivateNic) -> Job:
        return self.jobs.submit(_key(server_id), self.hosts.attach_network, server_id, nic)

    def detach_network(self, server_id: int, network_id: int) -> Job:
        return self.jobs.submit(_key(server_id), self.hosts.detach_network, server_id, network_id)

    def remove_network(self, network_id: int) -> Job:
        return self.jobs.submit(f"network-{network_id}", self.hosts.remove_network, network_id)

    def snapshot(self, server_id: int, image_id: int) -> Job:
        """The job's result: ``{"image_size_bytes": ...}`` for the action that takes the image."""
        hosts = self.hosts

        def take() -> dict[str, Any]:
            return {"image_size_bytes": hosts.snapshot(server_id, image_id)}

        return self.jobs.submit(_key(server_id), take)

    def delete_image(self, image_id: int) -> Job:
        return self.jobs.submit(f"image-{image_id}", self.hosts.delete_image, image_id)

    # -- volumes ---------------------------------------------------------------------------------
    def create_volume(self, volume_id: int, size_gb: int, fmt: str | None) -> Job:
        return self.jobs.submit(_vkey(volume_id), self.hosts.create_volume, volume_id, size_gb, fmt)

    def attach_volume(self, volume_id: int, server_id: int, automount: bool) -> Job:
        return self.jobs.submit([_key(server_id), _vkey(volume_id)], self.hosts.attach_volume, server_id,
                                volume_id, automount)

    def detach_volume(self, volume_id: int, server_id: int) -> Job:
        return self.jobs.submit([_key(server_id), _vkey(volume_id)], self.hosts.detach_volume, server_id,
                                volume_id)

    def resize_volume(self, volume_id: int, size_gb: int) -> Job:
        return self.jobs.submit(_vkey(volume_id), self.hosts.resize_volume, volume_id, size_gb)

    def delete_volume(self, volume_id: int) -> Job:
        return self.jobs.submit(_vkey(volume_id), self.hosts.delete_volume, volume_id)

    # -- firewalls and load balancers ------------------------------------------------------------
    def set_firewalls(self, guarded: list[Guarded]) -> Job:
        return self.jobs.submit("firewalls", self.hosts.set_firewalls, guarded)

    def set_load_balancer(self, spec: LbSpec) -> Job:
        return self.jobs.submit(_lbkey(spec.lb_id), self.hosts.set_load_balancer, spec)

    def delete_load_balancer(self, lb_id: int) -> Job:
        return self.jobs.submit(_lbkey(lb_id), self.hosts.delete_load_balancer, lb_id)

    def load_balancer_health(self, lb_id: int) -> dict[int, dict[str, str]] | None:
        """listen port -> target name -> health from the real health checks ({} until polled).
        Reads a cache: never waits."""
        return self.hosts.load_balancer_health(lb_id) or {}

    # -- the whole -------------------------------------------------------------------------------
    def prune(self, keep_servers: set[int], keep_volumes: set[int]) -> None:
        """After a restart: forget the disks and volumes of servers and volumes that are gone."""
        self.hosts.prune_disks(keep_servers)
        self.hosts.prune_volumes(keep_volumes)

    def destroy_all(self) -> None:
        """Destroy every machine and load balancer, after the jobs queued for it (the side door's reset)."""
        hosts = self.hosts
        futures = [self.jobs.submit(_key(sid), hosts.destroy, sid) for sid in list(hosts.machines)]
        futures += [self.jobs.submit(_lbkey(lid), hosts.delete_load_balancer, lid) for lid in list(hosts.balancers)]
        futures += self.jobs.pending()  # volume jobs too
        for future in futures:
            with contextlib.suppress(Exception):
                future.result()
        for lid in list(hosts.balancers):  # made by a job that was still queued above
            hosts.delete_load_balancer(lid)
        hosts.delete_all_volumes()

    def stop(self) -> list[int]:
        """Finish the queued jobs, power every machine off and remove what localcloud made;
        the servers whose power had to be cut."""
        self.jobs.shutdown()
        return self.hosts.stop()
