"""No lock-out: is this machine's address among the admin CIDRs that SSH and 6443 allow?

The address is ``--admin-ip`` when given; on localcloud, the address localcloud gives this
machine on its public side (its side door says); on real Hetzner, what a public
what-is-my-IP service answers. When it cannot be found, the check warns instead.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.request

from nornos_infra.spec import EnvSpec

LOOKUP_URL = "https://api.ipify.org"


def localcloud_admin_address(endpoint: str) -> str | None:
    """The admin address localcloud reports, or None when the endpoint is not localcloud."""
    url = endpoint.removesuffix("/v1").rstrip("/") + "/_localcloud/health"
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        return None
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            data: object = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    address = data.get("admin_address") if isinstance(data, dict) else None
    return str(address) if address else None


def public_address() -> str | None:
    try:
        with urllib.request.urlopen(LOOKUP_URL, timeout=3) as resp:
            text = str(resp.read().decode()).strip()
        return str(ipaddress.ip_address(text))
    except (OSError, ValueError):
        return None


def find_address(endpoint: str, given: str | None) -> str | None:
    if given:
        return given
    local = localcloud_admin_address(endpoint)
    if local is not None:
        return local
    if endpoint.startswith("http://127.") or endpoint.startswith("http://localhost"):
        return None  # a local API without an admin address: nothing to look up on the internet
    return public_address()


def covered(spec: EnvSpec, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in cidr for cidr in spec.admin_cidrs)
