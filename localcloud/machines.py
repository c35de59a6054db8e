"""What the API asks of the machine side, and the shapes it asks in.

The API is handed one :class:`Machines` (``cloud.machines``) and tells it, through it alone,
what to make real: a server was created, a volume attached, a load balancer's document
changed. The API says it in the plain shapes below (built from its documents by
``localcloud/api/machine_specs.py`` and the families' ``effects``); the machine side
(``localcloud/hosts/``, ``--hosts nspawn``: :class:`localcloud.hosts.jobs.NspawnMachines`)
never reads the API's documents and imports nothing from ``localcloud.api``.

Each request returns the job that carries it out (a :class:`~concurrent.futures.Future`),
or None when there is nothing to wait for; the API ties its actions to those jobs (an
action stays ``running`` until its job is done). With ``--hosts none`` the API is handed
:class:`NoMachines`: every request is accepted and nothing happens.

This module is below both sides: it imports nothing from localcloud.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

Job = Future[Any] | None


# -- servers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageRef:
    """What a machine's disk starts from: a system image by name, or a snapshot by id."""

    name: str | None = None
    snapshot: int | None = None


@dataclass(frozen=True)
class PrivateNic:
    network_id: int
    ip_range: str  # the network's ip_range: on-link on the NIC
    ip: str
    alias_ips: tuple[str, ...] = ()
    mac: str | None = None


@dataclass
class ServerSpec:
    server_id: int
    hostname: str
    image: ImageRef
    ssh_keys: list[str] = field(default_factory=list)
    user_data: str | None = None
    ipv4: str | None = None
    ipv6_net: str | None = None
    private: list[PrivateNic] = field(default_factory=list)


# -- cloud firewalls -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One rule of the API (``direction`` in/out; ``ips`` are source_ips for in, destination_ips for out)."""

    direction: str
    protocol: str
    port: str | None
    ips: tuple[str, ...]


@dataclass(frozen=True)
class Guarded:
    """A server with at least one firewall: its public addresses and all its firewalls' rules."""

    server_id: int
    ipv4: str | None
    ipv6_net: str | None
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    @property
    def inbound(self) -> list[Rule]:
        return [r for r in self.rules if r.direction == "in"]

    @property
    def outbound(self) -> list[Rule]:
        return [r for r in self.rules if r.direction == "out"]


# -- load balancers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HealthCheck:
    protocol: str  # tcp or http
    port: int
    interval: int
    timeout: int
    retries: int
    path: str = "/"
    domain: str | None = None
    status_codes: tuple[str, ...] = ()
    response: str = ""
    tls: bool = False


@dataclass(frozen=True)
class Service:
    protocol: str  # tcp, http or https
    listen_port: int
    destination_port: int
    health: HealthCheck
    proxyprotocol: bool = False
    sticky_sessions: bool = False
    cookie_name: str = "HCLBSTICKY"
    cookie_lifetime: int = 300
    timeout_idle: int = 50
    redirect_http: bool = False


@dataclass(frozen=True)
class Target:
    name: str  # the API's target_name(...): health is looked up by it
    ip: str


@dataclass(frozen=True)
class LbNic:
    network_id: int
    ip_range: str  # the network's: on-link on the NIC
    ip: str


@dataclass(frozen=True)
class LbSpec:
    """A load balancer as the hosts backend makes it; ``ipv4``/``ipv6`` None: no public side."""

    lb_id: int
    algorithm: str = "round_robin"
    ipv4: str | None = None
    ipv6: str | None = None
    private: tuple[LbNic, ...] = ()
    services: tuple[Service, ...] = ()
    targets: tuple[Target, ...] = ()

    @property
    def addresses(self) -> list[str]:
        """Where services listen: the public addresses and every private IP."""
        return [a for a in (self.ipv4, self.ipv6) if a] + [n.ip for n in self.private]


# -- the one object the API is handed ------------------------------------------------------------
class Machines(Protocol):
    """The machine side as the API sees it. Requests on one server (or volume, load balancer)
    run in the order the API made them; none blocks the caller."""

    @property
    def real(self) -> bool:
        """False when nothing is made real: the API need not build what it would hand over."""

    @property
    def unusable_ipv4_pools(self) -> frozenset[str]:
        """Public pools this machine cannot use (they overlap its own networks): not handed out."""

    def machine_count(self) -> int | None: ...

    # servers
    def create_server(self, spec: ServerSpec, *, keep_disk: bool = False) -> Job: ...
    def boot(self, server_id: int) -> Job: ...
    def delete_server(self, server_id: int, volume_ids: list[int]) -> Job: ...
    def power(self, server_id: int, op: str) -> Job: ...
    def rebuild(self, server_id: int, image: ImageRef, ssh_keys: list[str], user_data: str | None) -> Job: ...
    def set_public(self, server_id: int, ipv4: str | None, ipv6_net: str | None) -> Job: ...
    def attach_network(self, server_id: int, nic: PrivateNic) -> Job: ...
    def detach_network(self, server_id: int, network_id: int) -> Job: ...
    def remove_network(self, network_id: int) -> Job: ...
    def snapshot(self, server_id: int, image_id: int) -> Job: ...
    def delete_image(self, image_id: int) -> Job: ...
    # volumes
    def create_volume(self, volume_id: int, size_gb: int, fmt: str | None) -> Job: ...
    def attach_volume(self, volume_id: int, server_id: int, automount: bool) -> Job: ...
    def detach_volume(self, volume_id: int, server_id: int) -> Job: ...
    def resize_volume(self, volume_id: int, size_gb: int) -> Job: ...
    def delete_volume(self, volume_id: int) -> Job: ...
    # firewalls and load balancers
    def set_firewalls(self, guarded: list[Guarded]) -> Job: ...
    def set_load_balancer(self, spec: LbSpec) -> Job: ...
    def delete_load_balancer(self, lb_id: int) -> Job: ...
    def load_balancer_health(self, lb_id: int) -> dict[int, dict[str, str]] | None: ...
    # the whole
    def prune(self, keep_servers: set[int], keep_volumes: set[int]) -> None: ...
    def destroy_all(self) -> None: ...


class NoMachines:
    """``--hosts none``: the API alone. Every request is accepted; nothing is made."""

    real = False
    unusable_ipv4_pools: frozenset[str] = frozenset()

    def machine_count(self) -> int | None:
        return None

    def create_server(self, spec: ServerSpec, *, keep_disk: bool = False) -> Job:
        return None

    def boot(self, server_id: int) -> Job:
        return None

    def delete_server(self, server_id: int, volume_ids: list[int]) -> Job:
        return None

    def power(self, server_id: int, op: str) -> Job:
        return None

    def rebuild(self, server_id: int, image: ImageRef, ssh_keys: list[str], user_data: str | None) -> Job:
        return None

    def set_public(self, server_id: int, ipv4: str | None, ipv6_net: str | None) -> Job:
        return None

    def attach_network(self, server_id: int, nic: PrivateNic) -> Job:
        return None

    def detach_network(self, server_id: int, network_id: int) -> Job:
        return None

    def remove_network(self, network_id: int) -> Job:
        return None

    def snapshot(self, server_id: int, image_id: int) -> Job:
        return None

    def delete_image(self, image_id: int) -> Job:
        return None

    def create_volume(self, volume_id: int, size_gb: int, fmt: str | None) -> Job:
        return None

    def attach_volume(self, volume_id: int, server_id: int, automount: bool) -> Job:
        return None

    def detach_volume(self, volume_id: int, server_id: int) -> Job:
        return None

    def resize_volume(self, volume_id: int, size_gb: int) -> Job:
        return None

    def delete_volume(self, volume_id: int) -> Job:
        return None

    def set_firewalls(self, guarded: list[Guarded]) -> Job:
        return None

    def set_load_balancer(self, spec: LbSpec) -> Job:
        return None

    def delete_load_balancer(self, lb_id: int) -> Job:
        return None

    def load_balancer_health(self, lb_id: int) -> dict[int, dict[str, str]] | None:
        return None

    def prune(self, keep_servers: set[int], keep_volumes: set[int]) -> None:
        pass

    def destroy_all(self) -> None:
        pass
