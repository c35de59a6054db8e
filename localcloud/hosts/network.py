"""Bridges, network namespaces and veth pairs: the machines' public and private networks.

This machine plays the internet and the admin's workstation: it holds the first address
of every public pool on the ``lc-pub`` bridge (198.51.100.1 is ``ADMIN_ADDRESS``), so it
reaches every server's public IP directly. Each Hetzner network is a bridge ``lc-n<id>``
WITHOUT an address on this machine: private IPs are reachable only from machines on that
network. Machines get no default route; all public pools are on-link on ``eth0``, so
servers reach each other's public IPs and this machine, and nothing else. Nothing here
forwards or NATs (``net.ipv4.ip_forward`` stays 0).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from localcloud.config import PUBLIC_IPV4_POOLS, PUBLIC_IPV6_POOL
from localcloud.hosts.system import (
    OUR_LINK,
    PUBLIC_BRIDGE,
    HostError,
    netns_name,
    network_bridge,
    private_veth,
    run,
)
from localcloud.machines import PrivateNic

# The public pools of config.PUBLIC_IPV4_POOLS (the API hands out their addresses); this
# machine takes the first host of each.
PUBLIC_POOLS: tuple[str, ...] = PUBLIC_IPV4_POOLS
PUBLIC_IPV6 = PUBLIC_IPV6_POOL


def _gateway(pool: str) -> str:
    net = ipaddress.ip_network(pool)
    return f"{net.network_address + 1}/{net.prefixlen}"


def _links(netns: str | None = None) -> list[dict[str, Any]]:
    cmd = ["ip", "-j", "-d", "link", "show"] if netns is None else ["ip", "-n", netns, "-j", "-d", "link", "show"]
    data = json.loads(run(cmd).stdout or "[]")
    return list(data)


def link_exists(name: str, netns: str | None = None) -> bool:
    cmd = ["ip", "link", "show", name] if netns is None else ["ip", "-n", netns, "link", "show", name]
    return run(cmd, check=False).returncode == 0


def netns_exists(server_id: int) -> bool:
    return run(["ip", "netns", "pids", netns_name(server_id)], check=False).returncode == 0


def ip_forwarding() -> bool:
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        return f.read().strip() != "0"


# -- conflicts with this machine's own networks --------------------------------------------
def resolve_all(hosts: Iterable[str]) -> list[str]:
    out: list[str] = []
    for host in hosts:
        try:
            out += [str(info[4][0]) for info in socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)]
        except OSError:
            continue
    return out


def conflicting_pools(pools: Iterable[str] = PUBLIC_POOLS, avoid: Iterable[str] = ()) -> list[str]:
    """Pools that overlap a network this machine already uses (a route or an address not on
    our links) or contain an address it must keep reaching (``avoid``: the mirror, DNS).

    Putting such a pool on lc-pub would cut this machine off from that network, so it is
    not used: its addresses are not given to servers while real hosts run.
    """
    taken: list[ipaddress.IPv4Network] = []
    for route in json.loads(run(["ip", "-4", "-j", "route", "show", "table", "all"]).stdout or "[]"):
        dst, dev = route.get("dst", ""), route.get("dev", "")
        if dst in ("default", "") or OUR_LINK.match(dev) or route.get("type") in ("broadcast", "multicast"):
            continue
        if dst.startswith("127.") or dst.startswith("224."):
            continue
        try:
            taken.append(ipaddress.IPv4Network(dst, strict=False))
        except ValueError:
            continue
    for link in json.loads(run(["ip", "-4", "-j", "addr", "show"]).stdout or "[]"):
        if OUR_LINK.match(link.get("ifname", "")) or link.get("ifname") == "lo":
            continue
        for info in link.get("addr_info", []):
            taken.append(ipaddress.IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for addr in avoid:
        taken.append(ipaddress.IPv4Network(f"{addr}/32"))
    return [p for p in pools if any(ipaddress.IPv4Network(p).overlaps(t) for t in taken)]


def nameservers() -> list[str]:
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        return []
    return [w[1] for w in (line.split() for line in lines) if len(w) >= 2 and w[0] == "nameserver"]


# -- bridges -------------------------------------------------------------------------------
def ensure_public_bridge(pools: Iterable[str] = PUBLIC_POOLS) -> None:
    """lc-pub with this machine's address in each given public pool (idempotent)."""
    if not link_exists(PUBLIC_BRIDGE):
        run(["ip", "link", "add", PUBLIC_BRIDGE, "type", "bridge"])
    have = run(["ip", "-o", "addr", "show", "dev", PUBLIC_BRIDGE]).stdout
    for pool in pools:
        addr = _gateway(pool)
        if f" {addr} " not in have:
            run(["ip", "addr", "add", addr, "dev", PUBLIC_BRIDGE])
    v6 = f"{ipaddress.ip_network(PUBLIC_IPV6).network_address + 1}/32"
    if f" {v6} " not in have:
        run(["ip", "addr", "add", v6, "dev", PUBLIC_BRIDGE, "nodad"])
    run(["ip", "link", "set", PUBLIC_BRIDGE, "up"])


# Servers boot on worker threads, several at once on one network: creating and removing a
# network's bridge must not interleave ("RTNETLINK answers: File exists").
BRIDGES_LOCK = threading.RLock()


def ensure_network_bridge(network_id: int) -> str:
    """The bridge of a Hetzner network: no address here, so this machine cannot reach it."""
    name = network_bridge(network_id)
    with BRIDGES_LOCK:
        if not link_exists(name):
            run(["ip", "link", "add", name, "type", "bridge"])
            run(["ip", "link", "set", name, "alias", f"localcloud network {network_id}"])
        run(["ip", "link", "set", name, "up"])
    return name


def remove_network_bridge(network_id: int) -> None:
    name = network_bridge(network_id)
    with BRIDGES_LOCK:
        if link_exists(name):
            run(["ip", "link", "del", name], check=False)


def remove_unused_network_bridges() -> None:
    """Networks' bridges with no port left (their last server went away)."""
    with BRIDGES_LOCK:
        _remove_unused_network_bridges()


def _remove_unused_network_bridges() -> None:
    links = _links()
    used = {link.get("master") for link in links if link.get("master")}
    for link in links:
        name = link["ifname"]
        if name.startswith("lc-n") and name not in used:
            run(["ip", "link", "del", name], check=False)


# -- namespaces ----------------------------------------------------------------------------
def create_netns(server_id: int) -> str:
    name = netns_name(server_id)
    if not netns_exists(server_id):
        run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "set", "lo", "up"])
    return name


def delete_netns(server_id: int) -> None:
    """Deleting the namespace destroys the veth ends in it, and so their host-side peers."""
    name = netns_name(server_id)
    for link in _links():
        if link.get("ifalias", "").startswith(f"localcloud server {server_id} "):
            run(["ip", "link", "del", link["ifname"]], check=False)
    if netns_exists(server_id):
        run(["ip", "netns", "del", name], check=False)


# -- public network ------------------------------------------------------------------------
def plug_public(ns: str, host_link: str, alias: str, ipv4: str | None, ipv6_cidr: str | None,
                pools: Iterable[str] = PUBLIC_POOLS) -> None:
    """(Re)make ``eth0`` of namespace ``ns`` on lc-pub (host side ``host_link``) with these public
    addresses (None: not enabled; both None: no public interface). No default route: the
    public pools in use (``pools``) are on-link and are the whole internet."""
    pools = list(pools)
    if link_exists(host_link):
        run(["ip", "link", "del", host_link])
    if ipv4 is None and ipv6_cidr is None:
        return
    run(["ip", "link", "add", host_link, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", host_link, "alias", alias])
    run(["ip", "link", "set", host_link, "master", PUBLIC_BRIDGE, "up"])
    own = None
    if ipv4 is not None:
        own = next((p for p in pools if ipaddress.ip_address(ipv4) in ipaddress.ip_network(p)), None)
        prefix = ipaddress.ip_network(own).prefixlen if own else 32
        run(["ip", "-n", ns, "addr", "add", f"{ipv4}/{prefix}", "dev", "eth0"])
    if ipv6_cidr is not None:
        run(["ip", "-n", ns, "addr", "add", ipv6_cidr, "dev", "eth0", "nodad"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    if ipv4 is not None:
        for pool in pools:
            if pool != own:
                run(["ip", "-n", ns, "route", "replace", pool, "dev", "eth0", "scope", "link"])
    if ipv6_cidr is not None:
        run(["ip", "-n", ns, "-6", "route", "replace", PUBLIC_IPV6, "dev", "eth0"])


def set_public(server_id: int, ipv4: str | None, ipv6_net: str | None,
               pools: Iterable[str] = PUBLIC_POOLS) -> None:
    """A server's public interface: its primary IPv4 and the first address of its IPv6 /64."""
    v6 = None
    if ipv6_net is not None:
        net = ipaddress.ip_network(ipv6_net)
        v6 = f"{net.network_address + 1}/{net.prefixlen}"
    plug_public(netns_name(server_id), f"lcp{server_id}", f"localcloud server {server_id} public", ipv4, v6, pools)


# -- other hosts on the internet ------------------------------------------------------------
def add_internet_host(index: int, address: str, pools: Iterable[str] = PUBLIC_POOLS) -> str:
    """A namespace on lc-pub at ``address``: another host on the internet (not this machine,
    not a server), from which tests and demos probe what the cloud firewalls let through.
    Returns the namespace's name (``ip netns exec <name> ...``)."""
    ns = f"lc-inet{index}"
    remove_internet_host(index)
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    plug_public(ns, f"lci{index}", f"localcloud internet host {index}", address, None, pools)
    return ns


def remove_internet_host(index: int) -> None:
    run(["ip", "netns", "del", f"lc-inet{index}"], check=False)
    if link_exists(f"lci{index}"):
        run(["ip", "link", "del", f"lci{index}"], check=False)


# -- private networks ----------------------------------------------------------------------
def inner_name(slot: int) -> str:
    """Private NICs are named as on Hetzner's x86 servers: enp7s0, enp8s0, ..."""
    return f"enp{6 + slot}s0"


def _private_links(server_id: int) -> dict[int, tuple[str, int]]:
    """network id -> (host veth, slot) of the server's private NICs."""
    out: dict[int, tuple[str, int]] = {}
    for link in _links():
        words = link.get("ifalias", "").split()
        # "localcloud server <sid> network <nid> slot <k>"
        if len(words) == 7 and words[:3] == ["localcloud", "server", str(server_id)] and words[3] == "network":
            out[int(words[4])] = (link["ifname"], int(words[6]))
    return out


def attach_private(server_id: int, nic: PrivateNic) -> str:
    """Plug the server into the network's bridge; returns the NIC's name in the machine."""
    ns = netns_name(server_id)
    existing = _private_links(server_id)
    if nic.network_id in existing:
        detach_private(server_id, nic.network_id)
        existing.pop(nic.network_id)
    slot = next(k for k in range(1, 100) if k not in {s for _, s in existing.values()})
    host, inner = private_veth(server_id, slot), inner_name(slot)
    with BRIDGES_LOCK:  # the bridge must not be removed as unused before our port joins it
        bridge = ensure_network_bridge(nic.network_id)
        run(["ip", "link", "add", host, "type", "veth", "peer", "name", inner, "netns", ns])
        run(["ip", "link", "set", host, "alias",
             f"localcloud server {server_id} network {nic.network_id} slot {slot}"])
        run(["ip", "link", "set", host, "master", bridge, "up"])
    if nic.mac:
        run(["ip", "-n", ns, "link", "set", inner, "address", nic.mac])
    prefix = ipaddress.ip_network(nic.ip_range, strict=False).prefixlen
    run(["ip", "-n", ns, "addr", "add", f"{nic.ip}/{prefix}", "dev", inner])
    for alias in nic.alias_ips:
        run(["ip", "-n", ns, "addr", "add", f"{alias}/32", "dev", inner])
    run(["ip", "-n", ns, "link", "set", inner, "up"])
    return inner


def detach_private(server_id: int, network_id: int) -> None:
    found = _private_links(server_id).get(network_id)
    if found is None:
        raise HostError(f"server {server_id} has no NIC on network {network_id}")
    run(["ip", "link", "del", found[0]])
