"""catalogue.check against the live catalogue (localcloud): one line per problem, few requests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from nornos_infra import catalogue
from nornos_infra.cloud.connection import Connection
from nornos_infra.spec import EnvSpec
from tests.conftest import TOKEN, LocalCloud
from tests.unit.test_spec import SHIPPED, shipped_raw


@pytest.fixture
def conn(localcloud: LocalCloud) -> Connection:
    localcloud.reset()
    return Connection(token=TOKEN, endpoint=localcloud.endpoint, budget=10)


def make(env: str = "dev", mutate: Callable[[dict[str, Any]], Any] | None = None) -> EnvSpec:
    """A spec from a shipped file; the catalogue check does not need the rules to pass."""
    raw = copy.deepcopy(shipped_raw(env))
    if mutate is not None:
        mutate(raw)
    return EnvSpec.model_validate(raw)


def pool_type(pool: str, server_type: str) -> Callable[[dict[str, Any]], None]:
    return lambda raw: raw["pools"][pool].update(server_type=server_type)


def requests_made(localcloud: LocalCloud) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in localcloud.requests_log()]


@pytest.mark.parametrize("env", SHIPPED)
def test_shipped_environments_pass_with_three_requests(env: str, conn: Connection, localcloud: LocalCloud) -> None:
    assert catalogue.check(make(env), conn) == []
    assert sorted(requests_made(localcloud)) == ["GET /images", "GET /load_balancer_types",
                                                 "GET /server_types"]
    queries = {r["path"]: r["query"] for r in localcloud.requests_log()}
    assert "per_page=50" in queries["/server_types"]
    assert "name=debian-12" in queries["/images"] and "type=system" in queries["/images"]


def test_one_request_per_distinct_image(conn: Connection, localcloud: LocalCloud) -> None:
    def mutate(raw: dict[str, Any]) -> None:
        raw["pools"]["redis"]["image"] = "ubuntu-24.04"
        raw["pools"]["workers"]["image"] = "ubuntu-24.04"
    assert catalogue.check(make("dev", mutate), conn) == []
    assert sorted(requests_made(localcloud)).count("GET /images") == 2
    assert len(requests_made(localcloud)) == 4


def test_unknown_server_type(conn: Connection) -> None:
    problems = catalogue.check(make("dev", pool_type("workers", "cx99")), conn)
    assert len(problems) == 1
    assert problems[0].startswith("pools.workers.server_type: 'cx99' is not a Hetzner server type; types orderable "
                                  "in fsn1: ")
    assert "cx23" in problems[0] and "cx11" not in problems[0] and "cpx11" not in problems[0]


@pytest.mark.parametrize(("old", "new"), [("cx11", "cx23 (2 cores, 4 GB)"), ("cx21", "cx23 (2 cores, 4 GB)"),
                                          ("cx31", "cx33 (4 cores, 8 GB)"), ("cx41", "cx43 (8 cores, 16 GB)"),
                                          ("cx51", "cx53 (16 cores, 32 GB)"), ("cx22", "cx23 (2 cores, 4 GB)")])
def test_retired_type_suggests_current_type(conn: Connection, old: str, new: str) -> None:
    problems = catalogue.check(make("dev", pool_type("redis", old)), conn)
    assert len(problems) == 1
    assert problems[0].startswith(f"pools.redis.server_type: {old} was retired on ")
    assert problems[0].endswith(f"and can no longer be ordered; use {new}, the current type of the same class")


def test_cx11_retired_date(conn: Connection) -> None:
    problems = catalogue.check(make("dev", pool_type("redis", "cx11")), conn)
    assert "retired on 2024-09-06" in problems[0]


def test_type_not_offered_in_location(conn: Connection) -> None:
    problems = catalogue.check(make("dev", pool_type("workers", "cpx11")), conn)
    assert problems[0].startswith("pools.workers.server_type: cpx11 is not offered in fsn1 (only in ash, hil); use ")
    assert len(problems) == 2 and problems[1].startswith("pools.workers.server_type: cpx11 is not offered in nbg1")


def test_unknown_location(conn: Connection) -> None:
    def mutate(raw: dict[str, Any]) -> None:
        raw.update(patient_data=False, location="xyz1", fallback_locations=[])
    problems = catalogue.check(make("dev", mutate), conn)
    assert problems == ["location: 'xyz1' is not a Hetzner location; use one of ash, fsn1, hel1, hil, nbg1, sin"]


def test_unknown_fallback_location(conn: Connection) -> None:
    problems = catalogue.check(make("dev", lambda raw: raw.update(fallback_locations=["nbg2"])), conn)
    assert problems == ["fallback_locations: 'nbg2' is not a Hetzner location; use one of ash, fsn1, hel1, hil, "
                        "nbg1, sin"]


def test_fallback_in_another_network_zone(conn: Connection, localcloud: LocalCloud) -> None:
    def mutate(raw: dict[str, Any]) -> None:
        raw.update(patient_data=False, fallback_locations=["ash"])
        for pool in raw["pools"].values():
            pool["server_type"] = "ccx13"  # offered everywhere: only the zone is wrong
    problems = catalogue.check(make("dev", mutate), conn)
    assert problems == ["fallback_locations: ash is in network zone us-east, fsn1 in eu-central; a fallback must "
                        "share the private network's zone, remove ash"]
    assert "GET /locations" not in requests_made(localcloud), "zones come from the static map"


def test_network_zone_must_contain_location(conn: Connection) -> None:
    def mutate(raw: dict[str, Any]) -> None:
        raw.update(patient_data=False, location="hil", fallback_locations=[])
        for pool in raw["pools"].values():
            pool["server_type"] = "ccx13"
    problems = catalogue.check(make("dev", mutate), conn)
    assert problems == ["network.zone: eu-central does not contain hil (network zone us-west); set network.zone: "
                        "us-west"]


def test_unknown_load_balancer_type(conn: Connection) -> None:
    problems = catalogue.check(make("dev", lambda raw: raw["load_balancer"].update(type="lb99")), conn)
    assert problems == ["load_balancer.type: 'lb99' is not a Hetzner load balancer type; use one of lb11, lb21, lb31"]


def test_too_many_services_for_the_lb_type(conn: Connection) -> None:
    def mutate(raw: dict[str, Any]) -> None:
        raw["load_balancer"].update(services=[80, 443, 8080, 8443, 9000, 9443])
    problems = catalogue.check(make("dev", mutate), conn)
    assert problems == ["load_balancer.services: lb11 allows 5 services, 6 are configured; choose a larger type or "
                        "fewer ports"]


def test_kube_api_takes_no_lb_service(conn: Connection) -> None:
    """The API is on the control planes' own addresses (ADR 0004): five app ports fit an lb11."""
    def mutate(raw: dict[str, Any]) -> None:
        raw["load_balancer"].update(services=[80, 443, 8080, 8443, 9000], kube_api=True)
    assert catalogue.check(make("dev", mutate), conn) == []


def test_no_lb_types_request_without_lb(conn: Connection, localcloud: LocalCloud) -> None:
    assert catalogue.check(make("dev", lambda raw: raw.update(load_balancer=None)), conn) == []
    assert "GET /load_balancer_types" not in requests_made(localcloud)


def test_unknown_image(conn: Connection) -> None:
    problems = catalogue.check(make("dev", lambda raw: raw.update(image="debian-99")), conn)
    assert problems == ["pools.agents.image: 'debian-99' is not a Hetzner system image; use one such as debian-12 "
                        "(`hcloud image list --type system`)"] + [
        f"pools.{p}.image: 'debian-99' is not a Hetzner system image; use one such as debian-12 "
        "(`hcloud image list --type system`)" for p in ("control-plane", "postgres", "redis", "workers")]


def test_bad_pool_image(conn: Connection) -> None:
    problems = catalogue.check(make("dev", lambda raw: raw["pools"]["redis"].update(image="windows-11")), conn)
    assert problems == ["pools.redis.image: 'windows-11' is not a Hetzner system image; use one such as debian-12 "
                        "(`hcloud image list --type system`)"]


def test_arm_types_find_their_image(conn: Connection) -> None:
    assert catalogue.check(make("dev", pool_type("redis", "cax11")), conn) == []


def test_empty_pool_is_not_checked(conn: Connection) -> None:
    """A pool scaled to 0 orders nothing; its type does not block the run."""
    def mutate(raw: dict[str, Any]) -> None:
        raw["pools"]["agents"].update(count=0, server_type="cx21")
    assert catalogue.check(make("dev", mutate), conn) == []


def test_several_problems_one_line_each(conn: Connection, localcloud: LocalCloud) -> None:
    def mutate(raw: dict[str, Any]) -> None:
        raw["pools"]["workers"]["server_type"] = "cx41"
        raw["pools"]["redis"]["server_type"] = "nope"
        raw["load_balancer"]["type"] = "lb1"
        raw["image"] = "debian-1"
    problems = catalogue.check(make("dev", mutate), conn)
    assert [p.split(":")[0] for p in problems] == [
        "pools.agents.image", "pools.control-plane.image", "pools.postgres.image", "pools.redis.server_type",
        "pools.workers.server_type", "pools.workers.image", "load_balancer.type"]
    assert all("\n" not in p for p in problems)
    assert len(requests_made(localcloud)) == 3


# -- without the API: availability and zones on crafted catalogues ---------------------------------
def _type(name: str, locations: dict[str, bool], **extra: Any) -> dict[str, Any]:
    return {"name": name, "cores": 4, "memory": 8.0, "cpu_type": "shared", "architecture": "x86",
            "deprecation": None, "prices": [],
            "locations": [{"name": n, "available": a, "deprecation": None} for n, a in locations.items()], **extra}


def _catalogue(*types: dict[str, Any]) -> catalogue.Catalogue:
    return catalogue.Catalogue({t["name"]: t for t in types}, {"lb11": {"name": "lb11", "prices": []}})


IMAGES = {"debian-12": [{"name": "debian-12", "architecture": "x86"}]}


def _all(server_type: str) -> Callable[[dict[str, Any]], None]:
    def mutate(raw: dict[str, Any]) -> None:
        for pool in raw["pools"].values():
            pool["server_type"] = server_type
    return mutate


def test_sold_out_with_a_fallback_is_fine() -> None:
    cat = _catalogue(_type("cx33", {"fsn1": False, "nbg1": True}))
    assert catalogue.check_against(make("dev", _all("cx33")), cat, IMAGES) == []


def test_sold_out_everywhere() -> None:
    cat = _catalogue(_type("cx33", {"fsn1": False, "nbg1": False}))
    problems = catalogue.check_against(make("dev", _all("cx33")), cat, IMAGES)
    assert problems[0] == ("pools.agents.server_type: cx33 is sold out in fsn1, nbg1; choose another type or add a "
                           "fallback location of the same network zone")
    assert len(problems) == 5


def test_deprecated_but_still_orderable_is_fine() -> None:
    later = {"announced": "2026-01-01T00:00:00Z", "unavailable_after": "2099-01-01T00:00:00Z"}
    cat = _catalogue(_type("cx33", {"fsn1": True, "nbg1": True}, deprecation=later))
    assert catalogue.check_against(make("dev", _all("cx33")), cat, IMAGES) == []


def test_retired_in_one_location_only() -> None:
    cx33 = _type("cx33", {"fsn1": True, "nbg1": True})
    cx33["locations"][1]["deprecation"] = {"unavailable_after": "2025-01-01T00:00:00Z"}
    cat = _catalogue(cx33, _type("cx43", {"fsn1": True, "nbg1": True}, memory=16.0))
    cat.now = datetime(2026, 1, 1, tzinfo=UTC)
    problems = catalogue.check_against(make("dev", _all("cx33")), cat, IMAGES)
    assert problems[0] == ("pools.agents.server_type: cx33 can no longer be ordered in nbg1 (retired there on "
                           "2025-01-01); use cx43 (4 cores, 16 GB), the current type of the same class")


def test_image_without_a_build_for_the_architecture() -> None:
    cat = _catalogue(_type("cax21", {"fsn1": True, "nbg1": True}, architecture="arm"))
    problems = catalogue.check_against(make("dev", _all("cax21")), cat, IMAGES)
    assert problems[0] == ("pools.agents.image: debian-12 exists only for x86, the server type is arm; choose a "
                           "server type of that architecture or another image")


class FakeConn:
    """Counts list calls; answers like the API for a location missing from the static zone map."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def list_all(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self.calls.append(path)
        if path == "/server_types":
            return [_type("cx33", {"fsn1": True, "nbg1": True, "muc1": True})]
        if path == "/load_balancer_types":
            return [{"name": "lb11", "prices": []}]
        if path == "/locations":
            return [{"name": "fsn1", "network_zone": "eu-central"}, {"name": "muc1", "network_zone": "eu-central"}]
        return [{"name": "debian-12", "architecture": "x86"}]


def test_new_location_costs_one_locations_request() -> None:
    fake = FakeConn()
    spec = make("dev", lambda raw: (_all("cx33")(raw), raw.update(fallback_locations=["muc1"])))
    assert catalogue.check(spec, fake) == []  # type: ignore[arg-type]
    assert fake.calls == ["/server_types", "/load_balancer_types", "/locations", "/images"]
