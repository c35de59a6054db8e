"""localcloud's settings, from the command line (``python -m localcloud serve --help``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TOKEN = "localcloud-token"
DEFAULT_READONLY_TOKEN = "localcloud-readonly-token"

# -- addresses shared by the API (primary IPs, load balancers) and the real hosts ---------------
# Public IPv4 pools, in the order addresses are handed out. The first host of each /24
# stays free: it is the gateway when real machines get these addresses on a bridge.
# Servers' public IPv4 addresses: documentation ranges first, then the benchmarking range
# 198.18.0.0/15 (RFC 2544) for large clouds; none is routed on the internet. Load balancers
# take theirs from the same pools, from the top down (one set of used addresses for both).
# Not 203.0.113.0/24: some resolvers answer with it (deb.debian.org on a test machine), and
# a pool on the public bridge would cut this machine off from those addresses.
PUBLIC_IPV4_POOLS: tuple[str, ...] = ("198.51.100.0/24", "192.0.2.0/24", "198.18.0.0/15")
# This machine's address on localcloud's public side (first host of the first pool, never
# given to a server): the "internet" and the admin's workstation, as admin_cidrs see it.
ADMIN_ADDRESS = "198.51.100.1"
# Each server gets one /64 out of this documentation prefix (2001:db8::/64 itself is skipped).
PUBLIC_IPV6_POOL = "2001:db8::/32"

# Project limits (resource_limit_exceeded beyond them); the real defaults are similar.
DEFAULT_LIMITS: dict[str, int] = {
    "servers": 100,
    "volumes": 100,
    "networks": 50,
    "firewalls": 100,
    "load_balancers": 20,
    "primary_ips": 200,
    "placement_groups": 50,
    "ssh_keys": 200,
    "images": 100,
    "volume_size_gb": 10_240,
}


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8700
    state_dir: Path | None = None  # None keeps everything in memory
    token: str = DEFAULT_TOKEN
    readonly_token: str = DEFAULT_READONLY_TOKEN
    profile: str = "fast"
    time_scale: float = 1.0
    rate_limit: int = 3600  # requests per hour; refills one per 3600/limit seconds
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    faults: str | None = None  # JSON text or @path, see localcloud/faults.py
    seed: int | None = None
    hosts: str = "none"  # "none": API only; "nspawn": real Debian machines (part 2)
