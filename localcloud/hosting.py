"""The API's side of ``--hosts nspawn``: server actions drive real machines.

Handlers call the functions below after starting their action; each queues a job for the
hosts backend (``cloud.hosts``) on a worker thread, one queue per server so that a
server's jobs run in the order the API accepted them, and ties the action to the job: the
action engine keeps the action ``running`` until its job is done, and ends it in ``error``
(code ``action_failed``, the job's one-line reason) when the job fails. The event loop
never waits for a machine. With ``--hosts none`` (``cloud.hosts`` is None) every function
here does nothing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from localcloud import events
from localcloud.api import images

if TYPE_CHECKING:
    from localcloud.cloud import Cloud
    from localcloud.hosts.backend import Hosts, ImageRef, ServerSpec
    from localcloud.hosts.firewall import Guarded
    from localcloud.hosts.loadbalancer import LbSpec
    from localcloud.hosts.network import PrivateNic
    from localcloud.store import Doc

log = logging.getLogger("localcloud.hosting")


class HostJobs:
    """Jobs for the hosts backend, serial per key (a server), parallel across keys."""

    def __init__(self, hosts: Hosts, workers: int = 32) -> None:
        self.hosts = hosts
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

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def destroy_all(self) -> None:
        """Destroy every machine and load balancer, after the jobs queued for it (the side door's reset)."""
        futures = [self.submit(_key(sid), self.hosts.destroy, sid) for sid in list(self.hosts.machines)]
        futures += [self.submit(_lbkey(lid), self.hosts.delete_load_balancer, lid)
                    for lid in list(self.hosts.balancers)]
        with self._lock:
            futures += list(self._last.values())  # volume jobs too
        for future in futures:
            with contextlib.suppress(Exception):
                future.result()
        for lid in list(self.hosts.balancers):  # made by a job that was still queued above
            self.hosts.delete_load_balancer(lid)
        self.hosts.delete_all_volumes()


def _jobs(cloud: Cloud) -> HostJobs | None:
    return cloud.host_jobs


def _tie(cloud: Cloud, action: Doc | None, future: Future[Any]) -> None:
    if action is not None:
        cloud.engine.jobs[int(action["id"])] = future


def _key(server_id: int) -> str:
    return f"server-{server_id}"


def _vkey(volume_id: int) -> str:
    return f"volume-{volume_id}"


def _lbkey(lb_id: int) -> str:
    return f"lb-{lb_id}"


# -- building the backend's view of a server ------------------------------------------------
def image_ref(cloud: Cloud, image_id: int | None) -> ImageRef:
    from localcloud.hosts.backend import ImageRef

    image = images.get_image(cloud, image_id)
    if image is None or image["type"] in ("system", "app"):
        return ImageRef(name=image["name"] if image else None)
    return ImageRef(snapshot=int(image["id"]))


def _public(cloud: Cloud, server: Doc) -> tuple[str | None, str | None]:
    pn = server.get("public_net") or {}
    out: list[str | None] = []
    for slot in ("_ipv4", "_ipv6"):
        pip = cloud.store.get("primary_ip", pn[slot]) if pn.get(slot) is not None else None
        out.append(str(pip["ip"]) if pip is not None else None)
    return out[0], out[1]


def nic(cloud: Cloud, entry: Doc) -> PrivateNic | None:
    from localcloud.hosts.network import PrivateNic

    net = cloud.store.get("network", entry["network"])
    if net is None:
        return None
    return PrivateNic(int(net["id"]), str(net["ip_range"]), str(entry["ip"]), tuple(entry.get("alias_ips") or ()),
                      entry.get("mac_address"))


def spec(cloud: Cloud, server: Doc) -> ServerSpec:
    from localcloud.hosts.backend import ServerSpec

    keys = [str(k["public_key"]) for kid in server.get("_ssh_keys") or []
            if (k := cloud.store.get("ssh_key", kid)) is not None]
    ipv4, ipv6 = _public(cloud, server)
    nics = [n for e in server.get("private_net", []) if (n := nic(cloud, e)) is not None]
    return ServerSpec(int(server["id"]), str(server["name"]), image_ref(cloud, server.get("_image")), keys,
                      server.get("_user_data"), ipv4, ipv6, nics)


# -- what handlers call -------------------------------------------------------------------------
def server_created(cloud: Cloud, server: Doc, create: Doc, start: Doc | None, attaches: list[Doc]) -> None:
    """Make the machine (networks included) for ``create`` and its attach actions, boot it for ``start``."""
    jobs = _jobs(cloud)
    if jobs is None:
        return
    made = jobs.submit(_key(server["id"]), jobs.hosts.create, spec(cloud, server))
    for action in (create, *attaches):
        _tie(cloud, action, made)
    if start is not None:
        _tie(cloud, start, jobs.submit(_key(server["id"]), jobs.hosts.boot, server["id"]))


def server_deleted(cloud: Cloud, server: Doc, action: Doc, volume_ids: list[int] | None = None) -> None:
    """Destroy the machine; its volumes (``volume_ids``, detached by the API) are freed with it,
    before any later job on them (an attach to another server) runs."""
    jobs = _jobs(cloud)
    if jobs is not None:
        keys = [_key(server["id"]), *(_vkey(v) for v in volume_ids or [])]
        _tie(cloud, action, jobs.submit(keys, jobs.hosts.destroy, server["id"]))


def power(cloud: Cloud, server: Doc, op: str, action: Doc) -> None:
    jobs = _jobs(cloud)
    if jobs is not None:
        _tie(cloud, action, jobs.submit(_key(server["id"]), jobs.hosts.power, server["id"], op))


def network_attached(cloud: Cloud, server: Doc, entry: Doc, action: Doc) -> None:
    jobs = _jobs(cloud)
    card = nic(cloud, entry)
    if jobs is not None and card is not None:
        _tie(cloud, action, jobs.submit(_key(server["id"]), jobs.hosts.attach_network, server["id"], card))


def network_detached(cloud: Cloud, server: Doc, network_id: int, action: Doc) -> None:
    jobs = _jobs(cloud)
    if jobs is not None:
        _tie(cloud, action, jobs.submit(_key(server["id"]), jobs.hosts.detach_network, server["id"], network_id))


def network_deleted(cloud: Cloud, network_id: int) -> None:
    jobs = _jobs(cloud)
    if jobs is not None:
        jobs.submit(f"network-{network_id}", jobs.hosts.remove_network, network_id)


def public_net_changed(cloud: Cloud, server: Doc) -> None:
    """A primary IP was assigned or unassigned: the machine's eth0 follows."""
    jobs = _jobs(cloud)
    if jobs is not None and cloud.store.get("server", server["id"]) is not None:
        ipv4, ipv6 = _public(cloud, server)
        jobs.submit(_key(server["id"]), jobs.hosts.set_public, server["id"], ipv4, ipv6)
        firewalls_changed(cloud)
        load_balancers_changed(cloud)  # public-IP targets follow


# -- cloud firewalls ---------------------------------------------------------------------------
def guarded_servers(cloud: Cloud) -> list[Guarded]:
    """Every server with a public address and at least one firewall, with all their rules."""
    from localcloud.api import firewalls
    from localcloud.hosts.firewall import Guarded, Rule

    out = []
    for server in cloud.store.all("server"):
        ipv4, ipv6 = _public(cloud, server)
        applied = firewalls.firewalls_for_server(cloud, server)
        if not applied or (ipv4 is None and ipv6 is None):
            continue
        rules = []
        for fid in applied:
            for r in (cloud.store.get(firewalls.KIND, fid) or {}).get("rules", []):
                ips = r["source_ips"] if r["direction"] == "in" else r["destination_ips"]
                rules.append(Rule(r["direction"], r["protocol"], r.get("port"), tuple(ips)))
        out.append(Guarded(int(server["id"]), ipv4, ipv6, tuple(rules)))
    return out


def firewalls_changed(cloud: Cloud, actions: Sequence[Doc] = ()) -> None:
    """Rules or where they apply changed (or a server, its labels or addresses): the filters on
    this machine follow; ``actions`` (apply_firewall, set_firewall_rules, ...) end when they do."""
    jobs = _jobs(cloud)
    if jobs is None:
        return
    future = jobs.submit("firewalls", jobs.hosts.set_firewalls, guarded_servers(cloud))
    for action in actions:
        _tie(cloud, action, future)


@events.subscribe("server.created")
@events.subscribe("server.deleted")
@events.subscribe("server.labels_changed")
def _server_changed(cloud: Cloud, server: Doc, **_: Any) -> None:
    firewalls_changed(cloud)


def rebuilt(cloud: Cloud, server: Doc, image_id: int, action: Doc) -> None:
    jobs = _jobs(cloud)
    if jobs is None:
        return
    keys = spec(cloud, server).ssh_keys
    rebuild = functools.partial(jobs.hosts.rebuild, ssh_keys=keys, user_data=server.get("_user_data"))
    _tie(cloud, action, jobs.submit(_key(server["id"]), rebuild, server["id"], image_ref(cloud, image_id)))


def image_created(cloud: Cloud, server: Doc, image_id: int, action: Doc) -> None:
    jobs = _jobs(cloud)
    if jobs is None:
        return
    hosts = jobs.hosts

    def take() -> dict[str, Any]:
        return {"image_size_bytes": hosts.snapshot(server["id"], image_id)}

    _tie(cloud, action, jobs.submit(_key(server["id"]), take))


def image_deleted(cloud: Cloud, image_id: int) -> None:
    jobs = _jobs(cloud)
    if jobs is not None:
        jobs.submit(f"image-{image_id}", jobs.hosts.delete_image, image_id)


# -- volumes -------------------------------------------------------------------------------------
def volume_created(cloud: Cloud, volume: Doc, action: Doc) -> None:
    jobs = _jobs(cloud)
    if jobs is not None:
        _tie(cloud, action, jobs.submit(_vkey(volume["id"]), jobs.hosts.create_volume, volume["id"],
                                        volume["size"], volume.get("format")))


def volume_attached(cloud: Cloud, volume_id: int, server_id: int, automount: bool, action: Doc | None) -> None:
    jobs = _jobs(cloud)
    if jobs is not None:
        _tie(cloud, action, jobs.submit([_key(server_id), _vkey(volume_id)], jobs.hosts.attach_volume, server_id,
                                        volume_id, automount))


def volume_detached(cloud: Cloud, volume_id: int, server_id: int, action: Doc) -> None:
    jobs = _jobs(cloud)
    if jobs is not None:
        _tie(cloud, action, jobs.submit([_key(server_id), _vkey(volume_id)], jobs.hosts.detach_volume, server_id,
                                        volume_id))


def volume_resized(cloud: Cloud, volume_id: int, size: int, action: Doc) -> None:
    jobs = _jobs(cloud)
    if jobs is not None:
        _tie(cloud, action, jobs.submit(_vkey(volume_id), jobs.hosts.resize_volume, volume_id, size))


def volume_deleted(cloud: Cloud, volume_id: int) -> None:
    jobs = _jobs(cloud)
    if jobs is not None:
        jobs.submit(_vkey(volume_id), jobs.hosts.delete_volume, volume_id)


# -- load balancers ------------------------------------------------------------------------------
def lb_spec(cloud: Cloud, lb: Doc) -> LbSpec:
    """What the hosts backend makes of a load balancer: its addresses, services with their
    health checks, and the target addresses as of now (label selectors resolved)."""
    from localcloud.api import load_balancers as api
    from localcloud.hosts import loadbalancer as real

    services = []
    for s in lb["services"]:
        hc, http = s["health_check"], s.get("http") or {}
        hch = hc.get("http") or {}
        health = real.HealthCheck(hc["protocol"], int(hc["port"]), int(hc["interval"]), int(hc["timeout"]),
                                  int(hc["retries"]), hch.get("path") or "/", hch.get("domain"),
                                  tuple(hch.get("status_codes") or ()), hch.get("response") or "",
                                  bool(hch.get("tls")))
        services.append(real.Service(s["protocol"], int(s["listen_port"]), int(s["destination_port"]), health,
                                     bool(s.get("proxyprotocol")), bool(http.get("sticky_sessions")),
                                     http.get("cookie_name") or "HCLBSTICKY", int(http.get("cookie_lifetime") or 300),
                                     int(http.get("timeout_idle") or 50), bool(http.get("redirect_http"))))
    nics = []
    for entry in lb.get("private_net") or []:
        net = cloud.store.get("network", entry["network"])
        if net is not None:
            nics.append(real.LbNic(int(net["id"]), str(net["ip_range"]), str(entry["ip"])))
    pn = lb["public_net"]
    enabled = bool(pn.get("enabled"))
    return real.LbSpec(int(lb["id"]), lb["algorithm"]["type"], pn["ipv4"]["ip"] if enabled else None,
                       pn["ipv6"]["ip"] if enabled else None, tuple(nics), tuple(services),
                       tuple(real.Target(name, ip) for name, ip in api.target_addresses(cloud, lb)))


def load_balancer_changed(cloud: Cloud, lb: Doc, actions: Sequence[Doc] = ()) -> None:
    """The load balancer's proxy follows its document (created, services, targets, networks,
    algorithm, public interface); ``actions`` end when it does."""
    jobs = _jobs(cloud)
    if jobs is None or cloud.store.get("load_balancer", lb["id"]) is None:
        return
    future = jobs.submit(_lbkey(lb["id"]), jobs.hosts.set_load_balancer, lb_spec(cloud, lb))
    for action in actions:
        _tie(cloud, action, future)


def load_balancers_changed(cloud: Cloud) -> None:
    """Servers changed (created, deleted, labels, networks, addresses): every load balancer's
    targets are resolved again; the backend changes nothing where nothing changed."""
    if _jobs(cloud) is not None:
        for lb in cloud.store.all("load_balancer"):
            load_balancer_changed(cloud, lb)


def load_balancer_deleted(cloud: Cloud, lb_id: int, action: Doc) -> None:
    jobs = _jobs(cloud)
    if jobs is not None:
        _tie(cloud, action, jobs.submit(_lbkey(lb_id), jobs.hosts.delete_load_balancer, lb_id))


def load_balancer_health(cloud: Cloud, lb_id: int) -> dict[int, dict[str, str]] | None:
    """listen port -> target name -> health from the real health checks ({} until polled);
    None without real hosts. Reads a cache: never waits."""
    jobs = _jobs(cloud)
    if jobs is None:
        return None
    return jobs.hosts.load_balancer_health(lb_id) or {}


@events.subscribe("server.created")
@events.subscribe("server.deleted")
@events.subscribe("server.labels_changed")
@events.subscribe("server.network_changed")
def _lb_targets_changed(cloud: Cloud, server: Doc, **_: Any) -> None:
    load_balancers_changed(cloud)


def resume(cloud: Cloud) -> None:
    """After a restart with --state: machines for the stored servers (their disks were kept),
    booted when the server was running."""
    jobs = _jobs(cloud)
    if jobs is None:
        return
    keep: set[int] = set()
    for server in cloud.store.all("server"):
        keep.add(int(server["id"]))
        jobs.submit(_key(server["id"]), functools.partial(jobs.hosts.create, keep_disk=True), spec(cloud, server))
        for volume in cloud.store.all("volume"):  # the fstab entries are on the kept disk
            if volume.get("server") == server["id"]:
                volume_attached(cloud, int(volume["id"]), int(server["id"]), False, None)
        if server["status"] in ("running", "starting", "rebuilding"):
            jobs.submit(_key(server["id"]), jobs.hosts.boot, server["id"])
    jobs.hosts.prune_disks(keep)
    jobs.hosts.prune_volumes({int(v["id"]) for v in cloud.store.all("volume")})
    firewalls_changed(cloud)
    load_balancers_changed(cloud)
