"""No lock-out: is this machine's address among the admin CIDRs that SSH and 6443 allow?

The address is ``--admin-ip`` when given; on localcloud, the address localcloud gives this
machine on its public side (its side door says); on real Hetzner, what a public
what-is-my-IP service answers. When it cannot be found, the check warns instead.
"""

from __future__ import annotations

import ipaddress
import urllib.request

from nornos_infra.cloud.connection import Connection
from nornos_infra.spec import EnvSpec

LOOKUP_URL = "https://api.ipify.org"


def public_address() -> str | None:
    try:
        with urllib.request.urlopen(LOOKUP_URL, timeout=3) as resp:
            text = str(resp.read().decode()).strip()
        return str(ipaddress.ip_address(text))
    except (OSError, ValueError):
        return None


def find_address(conn: Connection, given: str | None) -> str | None:
    if given:
        return given
    local = conn.localcloud_admin_address()
    if local is not None:
        return local
    if conn.endpoint.startswith("http://127.") or conn.endpoint.startswith("http://localhost"):
        return None  # a local API without an admin address: nothing to look up on the internet
    return public_address()


def covered(spec: EnvSpec, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in cidr for cidr in spec.admin_cidrs)
