"""Private-network addresses: which are taken, and the next free one in a subnet.

Attachments are recorded only on the attached resource (``server.private_net`` and
``load_balancer.private_net``), so the used set is computed from them and can never
disagree with what the API shows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from localcloud import errors
from localcloud.cloud import Cloud
from localcloud.store import Doc

ATTACHABLE_KINDS = ("server", "load_balancer")


def attachments(cloud: Cloud, network_id: int) -> Iterator[tuple[str, Doc, Doc]]:
    """(kind, resource, private_net entry) for everything attached to the network."""
    for kind in ATTACHABLE_KINDS:
        for doc in cloud.store.all(kind):
            for entry in doc.get("private_net") or []:
                if entry["network"] == network_id:
                    yield kind, doc, entry


def used_ips(cloud: Cloud, network_id: int) -> set[str]:
    used: set[str] = set()
    for _, _, entry in attachments(cloud, network_id):
        used.add(entry["ip"])
        used.update(entry.get("alias_ips") or [])
    return used


def gateway(network: Doc) -> str:
    """Hetzner routes each network through its first address (e.g. 10.0.0.1)."""
    return str(next(ipaddress.ip_network(network["ip_range"]).hosts()))


def allocate_ip(cloud: Cloud, network: Doc, requested: str | None = None, field: str = "ip") -> str:
    """A free address in one of the network's cloud/server subnets, or the requested one if free."""
    subnets = [ipaddress.ip_network(s["ip_range"]) for s in network.get("subnets", [])
               if s.get("type") in ("cloud", "server")]
    if not subnets:
        raise errors.ApiError("no_subnet_available", f"network {network['id']} has no subnet for servers")
    taken = used_ips(cloud, network["id"]) | {gateway(network)}
    taken |= {s.get("gateway") for s in network.get("subnets", []) if s.get("gateway")}
    if requested is not None:
        try:
            addr = ipaddress.ip_address(requested)
        except ValueError as exc:
            raise errors.invalid_field(field, f"{requested} is not a valid IP address") from exc
        if not any(addr in net for net in subnets):
            raise errors.invalid_field(field, f"{requested} is not inside a subnet of network {network['id']}")
        if requested in taken:
            raise errors.ApiError("ip_not_available", f"IP {requested} is already in use")
        return requested
    for net in subnets:
        for host in net.hosts():
            if str(host) not in taken:
                return str(host)
    raise errors.ApiError("ip_not_available", f"network {network['id']} has no free IP address left")
