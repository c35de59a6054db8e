"""Monthly cost, in one place: what is billed (from the desired and the observed resources) and
what it costs by the live price list (GET /pricing). The plan takes the result as its input;
the console shows it.

Prices are net EUR (excluding VAT), as Hetzner bills them; the primary IPv4 of each
server is billed separately, so it is counted on its own line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nornos_infra.cloud.model import Desired, Observed


@dataclass(frozen=True)
class CostItem:
    """One billable thing: kind is server, volume, load_balancer, primary_ipv4 or primary_ipv6."""

    kind: str
    type: str  # server/LB type name; "" for volumes and IPs
    location: str
    quantity: int = 1  # GB for volumes


class PriceList:
    def __init__(self, pricing: dict[str, Any]) -> None:
        self.raw = pricing
        self.currency: str = pricing.get("currency", "EUR")
        self._servers = {t["name"]: t["prices"] for t in pricing.get("server_types", [])}
        self._lbs = {t["name"]: t["prices"] for t in pricing.get("load_balancer_types", [])}
        self._ips = {p["type"]: p["prices"] for p in pricing.get("primary_ips", [])}
        self._volume_gb = Decimal(pricing["volume"]["price_per_gb_month"]["net"])
        self.unpriced: set[str] = set()  # e.g. retired types the price list no longer carries

    @staticmethod
    def _at(prices: list[dict[str, Any]], location: str, what: str) -> Decimal:
        for price in prices:
            if price["location"] == location:
                return Decimal(price["price_monthly"]["net"])
        raise KeyError(f"no price for {what} in {location}")

    def monthly(self, item: CostItem) -> Decimal:
        if item.kind == "server":
            return self._at(self._servers.get(item.type, []), item.location, item.type) * item.quantity
        if item.kind == "load_balancer":
            return self._at(self._lbs.get(item.type, []), item.location, item.type) * item.quantity
        if item.kind in ("primary_ipv4", "primary_ipv6"):
            prices = self._ips.get(item.kind.removeprefix("primary_"), [])
            return self._at(prices, item.location, item.kind) * item.quantity if prices else Decimal(0)
        if item.kind == "volume":
            return self._volume_gb * item.quantity
        raise ValueError(f"unknown cost item kind {item.kind}")

    def total(self, items: Iterable[CostItem]) -> Decimal:
        """Sum of the items; an item without a price counts 0 and is named in ``unpriced``."""
        amount = Decimal(0)
        for item in items:
            try:
                amount += self.monthly(item)
            except KeyError:
                self.unpriced.add(f"{item.type or item.kind} in {item.location}")
        return amount.quantize(Decimal("0.01"))


def euros(amount: Decimal) -> str:
    return f"€{amount.quantize(Decimal('0.01')):,.2f}"


@dataclass(frozen=True)
class Cost:
    """Monthly cost before (the cloud as observed) and after (as the env file wants it)."""

    before: Decimal
    after: Decimal
    unpriced: frozenset[str] = frozenset()  # e.g. retired types the price list no longer carries


def estimate(pricing: dict[str, Any], desired: list[Desired], observed: list[Observed]) -> Cost:
    """The cost of going from ``observed`` to ``desired``, by the price list ``pricing``."""
    prices = PriceList(pricing)
    before = prices.total(cost_items(desired, observed, "before"))
    after = prices.total(cost_items(desired, observed, "after"))
    return Cost(before, after, frozenset(prices.unpriced))


def cost_items(desired: list[Desired], observed: list[Observed], side: str) -> list[CostItem]:
    """What is billed monthly "before" (the observed state) or "after" (the desired state).

    After: every server with its primary IPv4 and IPv6 (servers are created with both); a server
    that already runs in an allowed fallback location is priced where it is, since it stays.
    """
    if side == "before":
        return _observed_items(observed)
    if side == "after":
        return _desired_items(desired, observed)
    raise ValueError(f"side must be 'before' or 'after', not {side!r}")


def _observed_items(observed: Iterable[Observed]) -> list[CostItem]:
    items: list[CostItem] = []
    server_location = {o.name: o.settings.get("location") or "" for o in observed if o.kind == "server"}
    for o in observed:
        if o.kind == "server":
            location = server_location[o.name]
            items.append(CostItem("server", o.settings["server_type"], location))
            public = o.raw.get("public_net") or {}
            if o.settings.get("public_ipv4") or (public.get("ipv4") or {}).get("ip"):
                items.append(CostItem("primary_ipv4", "", location))
            if (public.get("ipv6") or {}).get("ip"):
                items.append(CostItem("primary_ipv6", "", location))
        elif o.kind == "volume":
            location = o.settings.get("location") or server_location.get(o.settings.get("server") or "", "")
            items.append(CostItem("volume", "", location, int(o.settings["size"])))
        elif o.kind == "load_balancer":
            items.append(CostItem("load_balancer", o.settings["type"], o.settings.get("location") or ""))
    return items


def _desired_items(desired: Iterable[Desired], observed: Iterable[Observed]) -> list[CostItem]:
    existing = {o.name: o.settings.get("location") for o in observed if o.kind == "server"}
    items: list[CostItem] = []
    server_location: dict[str, str] = {}
    for d in desired:
        if d.kind != "server":
            continue
        allowed = [d.settings["location"], *d.settings.get("fallback_locations", [])]
        here = existing.get(d.name)
        location = here if here in allowed and here is not None else str(d.settings["location"])
        server_location[d.name] = location
        items += [CostItem("server", d.settings["server_type"], location),
                  CostItem("primary_ipv4", "", location),
                  CostItem("primary_ipv6", "", location)]
    for d in desired:
        if d.kind == "volume":
            location = server_location.get(d.settings["server"], "")
            items.append(CostItem("volume", "", location, int(d.settings["size"])))
        elif d.kind == "load_balancer":
            items.append(CostItem("load_balancer", d.settings["type"], d.settings["location"]))
    return items
