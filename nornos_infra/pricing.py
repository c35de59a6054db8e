"""Monthly cost of a set of resources, from the live price list (GET /pricing).

Prices are net EUR (excluding VAT), as Hetzner bills them; the primary IPv4 of each
server is billed separately, so it is counted on its own line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


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
