"""The spec against the LIVE catalogue, before anything is changed; and the cost items of a state.

Requests, whatever the size of the environment (tests/api/test_catalogue.py counts them):

- ``GET /server_types`` (one page of 50 holds every type Hetzner lists today),
- ``GET /load_balancer_types`` (only when the spec has a load balancer),
- ``GET /images?name=<image>&type=system`` once per distinct image (usually one).

``GET /locations`` is not needed: a location exists when some server type lists it, and the
network zones of Hetzner's locations are a small static map (:data:`NETWORK_ZONES`). Only a
location missing from that map (one Hetzner opened after this was written) costs one
``GET /locations``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nornos_infra.cloud.connection import Connection
from nornos_infra.spec import EnvSpec

NETWORK_ZONES = {"fsn1": "eu-central", "nbg1": "eu-central", "hel1": "eu-central",
                 "ash": "us-east", "hil": "us-west", "sin": "ap-southeast"}

# Retired shared-vCPU generations -> the current type of the same class (same memory, at least
# the cores; cx11 has no 2 GB successor, the smallest current CX is cx23). See docs/COSTS.md.
SUCCESSORS = {
    "cx11": "cx23", "cx21": "cx23", "cx31": "cx33", "cx41": "cx43", "cx51": "cx53",
    "cx22": "cx23", "cx32": "cx33", "cx42": "cx43", "cx52": "cx53",
}


@dataclass
class Catalogue:
    """The parts of the live catalogue the checks need; ``now`` decides what is retired."""

    server_types: dict[str, dict[str, Any]]
    load_balancer_types: dict[str, dict[str, Any]]
    zones: dict[str, str] = field(default_factory=lambda: dict(NETWORK_ZONES))
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def locations(self) -> list[str]:
        """Every location some server type is offered in."""
        return sorted({loc["name"] for t in self.server_types.values() for loc in t.get("locations", [])})

    def retired_on(self, deprecation: dict[str, Any] | None) -> str | None:
        """The date a deprecation took effect, when it has (None while still orderable)."""
        after = (deprecation or {}).get("unavailable_after")
        if not after:
            return None
        when = datetime.fromisoformat(str(after).replace("Z", "+00:00"))
        return when.date().isoformat() if when <= self.now else None

    def offer(self, type_name: str, location: str) -> dict[str, Any] | None:
        for loc in self.server_types[type_name].get("locations", []):
            if loc["name"] == location:
                return dict(loc)
        return None

    def orderable(self, type_name: str, location: str) -> bool:
        """Listed in the location, not retired there (nor everywhere) and not sold out."""
        st = self.server_types.get(type_name)
        offer = self.offer(type_name, location) if st is not None else None
        if st is None or offer is None:
            return False
        if self.retired_on(st.get("deprecation")) or self.retired_on(offer.get("deprecation")):
            return False
        return bool(offer.get("available", True))

    def successor(self, type_name: str, location: str) -> str | None:
        """The current type of the same class: the known successor, else the smallest orderable
        type of the same family letters, CPU kind and architecture with at least the memory."""
        known = SUCCESSORS.get(type_name)
        if known and self.orderable(known, location):
            return known
        old = self.server_types.get(type_name)
        if old is None:
            return None
        family = type_name.rstrip("0123456789")
        candidates = [t for name, t in self.server_types.items()
                      if name != type_name and self.orderable(name, location)
                      and t.get("cpu_type") == old.get("cpu_type") and t.get("architecture") == old.get("architecture")
                      and float(t.get("memory", 0)) >= float(old.get("memory", 0))]
        candidates.sort(key=lambda t: (t["name"].rstrip("0123456789") != family, float(t["memory"]), t["cores"],
                                       t["name"]))
        return candidates[0]["name"] if candidates else None

    def describe(self, type_name: str) -> str:
        st = self.server_types[type_name]
        return f"{type_name} ({st.get('cores')} cores, {_gb(st.get('memory'))} GB)"


def _gb(value: Any) -> str:
    number = float(value or 0)
    return str(int(number)) if number.is_integer() else str(number)


def fetch(conn: Connection, need_lb_types: bool = True) -> Catalogue:
    """Server types (one page) and, when needed, load balancer types."""
    server_types = {t["name"]: t for t in conn.list_all("/server_types", "server_types")}
    lb_types = {t["name"]: t for t in conn.list_all("/load_balancer_types", "load_balancer_types")} \
        if need_lb_types else {}
    return Catalogue(server_types, lb_types)


def check(spec: EnvSpec, conn: Connection) -> list[str]:
    """One line per problem of ``spec`` against the live catalogue (empty: all is orderable)."""
    catalogue = fetch(conn, need_lb_types=spec.load_balancer is not None)
    _complete_zones(catalogue, spec, conn)
    images = {name: conn.list_all("/images", "images", {"name": name, "type": "system"})
              for name in sorted(_images(spec))}
    return check_against(spec, catalogue, images)


def _images(spec: EnvSpec) -> set[str]:
    return {pool.image or spec.image for pool in spec.pools.values() if pool.count > 0}


def _complete_zones(catalogue: Catalogue, spec: EnvSpec, conn: Connection) -> None:
    """One GET /locations, only when a location the spec names is known but not in the static map."""
    if all(loc in catalogue.zones or loc not in catalogue.locations for loc in spec.all_locations):
        return
    for loc in conn.list_all("/locations", "locations"):
        catalogue.zones[loc["name"]] = loc["network_zone"]


def check_against(spec: EnvSpec, catalogue: Catalogue, images: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The checks themselves, on data already fetched (unit-testable without an API)."""
    problems: list[str] = []
    known = catalogue.locations
    location_ok = spec.location in known
    if not location_ok:
        problems.append(f"location: {spec.location!r} is not a Hetzner location; use one of {', '.join(known)}")
    zone = catalogue.zones.get(spec.location)
    for loc in spec.fallback_locations:
        if loc not in known:
            problems.append(f"fallback_locations: {loc!r} is not a Hetzner location; use one of {', '.join(known)}")
        elif location_ok and catalogue.zones.get(loc) != zone:
            problems.append(f"fallback_locations: {loc} is in network zone {catalogue.zones.get(loc)}, {spec.location} "
                            f"in {zone}; a fallback must share the private network's zone, remove {loc}")
    if location_ok and zone is not None and spec.network.zone != zone:
        problems.append(f"network.zone: {spec.network.zone} does not contain {spec.location} (network zone {zone}); "
                        f"set network.zone: {zone}")
    for pool_name, pool in sorted(spec.pools.items()):
        if pool.count > 0:
            problems += _check_pool(spec, catalogue, pool_name, pool.server_type, pool.image or spec.image, images,
                                    location_ok)
    problems += _check_load_balancer(spec, catalogue, location_ok)
    return problems


def _check_pool(spec: EnvSpec, catalogue: Catalogue, pool_name: str, type_name: str, image: str,
                images: dict[str, list[dict[str, Any]]], location_ok: bool) -> list[str]:
    where = f"pools.{pool_name}.server_type"
    st = catalogue.server_types.get(type_name)
    if st is None:
        orderable = sorted(n for n in catalogue.server_types if catalogue.orderable(n, spec.location))
        hint = f"; types orderable in {spec.location}: {', '.join(orderable)}" if orderable else ""
        return [f"{where}: {type_name!r} is not a Hetzner server type{hint}"]
    problems: list[str] = []
    retired = catalogue.retired_on(st.get("deprecation"))
    if retired is not None:
        problems.append(f"{where}: {type_name} was retired on {retired} and can no longer be ordered; "
                        f"{_suggest(catalogue, type_name, spec.location)}")
    elif location_ok:
        problems += _check_offer(spec, catalogue, where, type_name)
    problems += _check_image(images, pool_name, image, str(st.get("architecture", "x86")))
    return problems


def _check_offer(spec: EnvSpec, catalogue: Catalogue, where: str, type_name: str) -> list[str]:
    offered = [loc["name"] for loc in catalogue.server_types[type_name].get("locations", [])]
    problems: list[str] = []
    for loc in spec.all_locations:
        if loc not in catalogue.locations:
            continue  # reported once, above
        offer = catalogue.offer(type_name, loc)
        if offer is None:
            problems.append(f"{where}: {type_name} is not offered in {loc} (only in {', '.join(sorted(offered))}); "
                            f"{_suggest(catalogue, type_name, spec.location)}")
            continue
        retired = catalogue.retired_on(offer.get("deprecation"))
        if retired is not None:
            problems.append(f"{where}: {type_name} can no longer be ordered in {loc} (retired there on {retired}); "
                            f"{_suggest(catalogue, type_name, spec.location)}")
    if problems:
        return problems
    if not any(catalogue.orderable(type_name, loc) for loc in spec.all_locations):
        problems.append(f"{where}: {type_name} is sold out in {', '.join(spec.all_locations)}; choose another type "
                        "or add a fallback location of the same network zone")
    return problems


def _suggest(catalogue: Catalogue, type_name: str, location: str) -> str:
    successor = catalogue.successor(type_name, location)
    if successor is None:
        return f"choose a type orderable in {location}"
    return f"use {catalogue.describe(successor)}, the current type of the same class"


def _check_image(images: dict[str, list[dict[str, Any]]], pool_name: str, image: str,
                 architecture: str) -> list[str]:
    found = images.get(image)
    if found is None:
        return []  # not fetched: nothing to check
    if not found:
        return [f"pools.{pool_name}.image: {image!r} is not a Hetzner system image; use one such as debian-12 "
                "(`hcloud image list --type system`)"]
    if not any(i.get("architecture", architecture) == architecture for i in found):
        builds = ", ".join(sorted({str(i.get("architecture")) for i in found}))
        return [f"pools.{pool_name}.image: {image} exists only for {builds}, the server type is {architecture}; "
                "choose a server type of that architecture or another image"]
    return []


def _check_load_balancer(spec: EnvSpec, catalogue: Catalogue, location_ok: bool) -> list[str]:
    lb = spec.load_balancer
    if lb is None:
        return []
    lbt = catalogue.load_balancer_types.get(lb.type)
    if lbt is None:
        names = ", ".join(sorted(n for n, t in catalogue.load_balancer_types.items()
                                 if catalogue.retired_on(t.get("deprecation")) is None))
        return [f"load_balancer.type: {lb.type!r} is not a Hetzner load balancer type; use one of {names}"]
    problems: list[str] = []
    retired = catalogue.retired_on(lbt.get("deprecation"))
    if retired is not None:
        problems.append(f"load_balancer.type: {lb.type} was retired on {retired}; choose a current type")
    priced = {p["location"] for p in lbt.get("prices", [])}
    if location_ok and priced and spec.location not in priced:
        problems.append(f"load_balancer.type: {lb.type} is not offered in {spec.location}; choose another type")
    services = len(set(lb.services))  # kube_api adds none: the LB never carries 6443 (ADR 0004)
    if lbt.get("max_services") is not None and services > int(lbt["max_services"]):
        problems.append(f"load_balancer.services: {lb.type} allows {lbt['max_services']} services, {services} are "
                        "configured; choose a larger type or fewer ports")
    targets = sum(p.count for p in spec.pools.values() if p.role in ("k3s_server", "k3s_agent"))
    if lbt.get("max_targets") is not None and targets > int(lbt["max_targets"]):
        problems.append(f"load_balancer.type: {lb.type} allows {lbt['max_targets']} targets, the cluster has "
                        f"{targets} nodes; choose a larger type")
    return problems
