"""The products localcloud's Hetzner sells: locations, datacenters, server and load
balancer types, system images and prices (Hetzner's catalogue, as served by the API; not
to be confused with ``nornos_infra/catalogue.py``, which checks a spec against the live one).

Data: ``data/catalog.json``, the project's checked copy of Hetzner's catalogue (sources for
every figure in ``data/catalog-sources.md``).
Retired types (cx11..cx51) are listed with their deprecation, as the real API lists
deprecated types until it drops them; they cannot be ordered.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from localcloud import errors

Doc = dict[str, Any]

# System images. Ids of debian-12 and ubuntu-24.04 are the real API's; the others are
# stable made-up ids in the same range.
SYSTEM_IMAGES: list[Doc] = [
    {"id": 114690387, "name": "debian-12", "description": "Debian 12", "os_flavor": "debian", "os_version": "12",
     "created": "2023-06-13T06:00:02+00:00"},
    {"id": 202151543, "name": "debian-13", "description": "Debian 13", "os_flavor": "debian", "os_version": "13",
     "created": "2025-08-11T06:00:02+00:00"},
    {"id": 67794396, "name": "ubuntu-22.04", "description": "Ubuntu 22.04", "os_flavor": "ubuntu",
     "os_version": "22.04", "created": "2022-04-21T13:32:38+00:00"},
    {"id": 161547269, "name": "ubuntu-24.04", "description": "Ubuntu 24.04", "os_flavor": "ubuntu",
     "os_version": "24.04", "created": "2024-04-25T13:26:27+00:00"},
    {"id": 161547270, "name": "rocky-9", "description": "Rocky Linux 9", "os_flavor": "rocky", "os_version": "9",
     "created": "2022-07-14T12:00:00+00:00"},
]


@dataclass
class Products:
    locations: list[Doc]
    datacenters: list[Doc]
    server_types: list[Doc]
    load_balancer_types: list[Doc]
    pricing_extra: Doc

    @classmethod
    def load(cls) -> Products:
        raw = json.loads(resources.files("localcloud").joinpath("data/catalog.json").read_text())
        server_types = list(raw["server_types"]) + list(raw.get("_retired_server_types", []))
        for st in server_types:
            if st.get("category") is None:
                # retired CX types carry no category in the fixture; the spec requires a string and
                # hcloud-go's fixtures give the CX line "cost_optimized"
                st["category"] = "cost_optimized"
        return cls(
            locations=raw["locations"],
            datacenters=raw["_datacenters"],
            server_types=sorted(server_types, key=lambda t: t["id"]),
            load_balancer_types=raw["load_balancer_types"],
            pricing_extra=raw["pricing"],
        )

    # -- lookups (by id or name, as request bodies allow) ---------------------------------
    @staticmethod
    def _find(items: list[Doc], ref: int | str | None) -> Doc | None:
        for item in items:
            if ref == item["id"] or ref == item["name"] or (isinstance(ref, str) and ref.isascii()
                                                            and ref.isdigit() and int(ref) == item["id"]):
                return item
        return None

    def location(self, ref: int | str | None) -> Doc | None:
        return self._find(self.locations, ref)

    def datacenter(self, ref: int | str | None) -> Doc | None:
        return self._find(self.datacenters, ref)

    def server_type(self, ref: int | str | None) -> Doc | None:
        return self._find(self.server_types, ref)

    def load_balancer_type(self, ref: int | str | None) -> Doc | None:
        return self._find(self.load_balancer_types, ref)

    def datacenter_of(self, location_name: str) -> Doc:
        for dc in self.datacenters:
            if dc["location"]["name"] == location_name:
                return dc
        raise errors.invalid_field("location", f"no datacenter in location {location_name}")

    # -- availability ---------------------------------------------------------------------
    def type_availability(self, server_type: Doc, location: str) -> str | None:
        """Why this type cannot be ordered in this location, or None when it can."""
        if server_type.get("deprecation"):
            after = server_type["deprecation"]["unavailable_after"]
            if datetime.fromisoformat(after.replace("Z", "+00:00")) <= datetime.now(UTC):
                return f"server type {server_type['name']} is deprecated and no longer available"
        for loc in server_type.get("locations", []):
            if loc["name"] == location:
                return None if loc.get("available", True) else (
                    f"server type {server_type['name']} is not available in {location}")
        return f"server type {server_type['name']} is not offered in location {location}"

    # -- rendering ------------------------------------------------------------------------
    def render_datacenter(self, dc: Doc) -> Doc:
        location = dc["location"]["name"]
        supported = [t["id"] for t in self.server_types
                     if any(loc["name"] == location for loc in t.get("locations", []))]
        available = [t["id"] for t in self.server_types
                     if self.type_availability(t, location) is None]
        out = copy.deepcopy(dc)
        out["location"] = copy.deepcopy(self.location(location))
        out["server_types"] = {"supported": supported, "available": available,
                               "available_for_migration": available}
        return out

    def pricing(self) -> Doc:
        """GET /pricing, as the catalogue records it (net and gross decimal strings)."""
        return copy.deepcopy(self.pricing_extra)
