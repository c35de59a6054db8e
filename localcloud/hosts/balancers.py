"""The load balancers on this machine (``--hosts nspawn``): one namespace and HAProxy each
(``loadbalancer.py``), and their health checks' verdicts, polled from HAProxy about once a
second for the API to read."""

from __future__ import annotations

import threading

from localcloud.hosts import loadbalancer as lbs
from localcloud.hosts import network
from localcloud.machines import LbSpec


class LoadBalancers:
    """Every load balancer the hosts backend made, and the thread that polls their health."""

    def __init__(self) -> None:
        self.balancers: dict[int, lbs.Balancer] = {}  # load balancer id -> its namespace and HAProxy
        self._lb_health: dict[int, dict[int, dict[str, str]]] = {}  # polled from HAProxy, read by the API
        self._lb_poller: threading.Thread | None = None
        self._lb_stop = threading.Event()

    def set_load_balancer(self, spec: LbSpec, usable_pools: list[str]) -> None:
        """Make the load balancer (namespace, links, HAProxy) match ``spec``; idempotent."""
        balancer = self.balancers.get(spec.lb_id)
        if balancer is None:
            balancer = self.balancers[spec.lb_id] = lbs.Balancer(spec.lb_id)
        balancer.apply(spec, usable_pools)
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

    def stop(self) -> None:
        """Stop polling, then remove every load balancer."""
        self._lb_stop.set()
        if self._lb_poller is not None:
            self._lb_poller.join(timeout=5)
            self._lb_poller = None
        for lb_id in list(self.balancers):
            self.delete_load_balancer(lb_id)

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
