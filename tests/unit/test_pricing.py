"""Monthly cost: the price list, the cost items of a state, and docs/COSTS.md kept honest."""

from __future__ import annotations

import json
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nornos_infra import catalogue, cost
from nornos_infra.cloud import desired
from nornos_infra.cloud.model import Observed
from nornos_infra.cost import CostItem, PriceList
from tests.unit.test_spec import SHIPPED, load_shipped, shipped_raw

ROOT = Path(__file__).resolve().parents[2]
CATALOG = json.loads((ROOT / "localcloud" / "data" / "catalog.json").read_text())
COSTS = ROOT / "docs" / "COSTS.md"


@pytest.fixture(scope="module")
def prices() -> PriceList:
    return PriceList(CATALOG["pricing"])


def test_prices_per_kind(prices: PriceList) -> None:
    assert prices.monthly(CostItem("server", "cx23", "fsn1")) == Decimal("5.49")
    assert prices.monthly(CostItem("server", "cx33", "nbg1", 3)) == Decimal("25.47")
    assert prices.monthly(CostItem("primary_ipv4", "", "fsn1")) == Decimal("0.50")
    assert prices.monthly(CostItem("primary_ipv6", "", "fsn1")) == 0
    assert prices.monthly(CostItem("volume", "", "fsn1", 100)) == Decimal("5.72")
    assert prices.monthly(CostItem("load_balancer", "lb11", "fsn1")) == Decimal("7.49")


def test_total_is_rounded_to_cents(prices: PriceList) -> None:
    assert prices.total([CostItem("volume", "", "fsn1", 33)]) == Decimal("1.89")  # 1.8876
    assert prices.total([]) == Decimal("0.00")


def test_unknown_price_is_an_error(prices: PriceList) -> None:
    with pytest.raises(KeyError, match="no price for cx23 in ash"):
        prices.monthly(CostItem("server", "cx23", "ash"))
    with pytest.raises(ValueError, match="unknown cost item kind"):
        prices.monthly(CostItem("floating_ip", "", "fsn1"))


def test_euros() -> None:
    assert cost.euros(Decimal("1234.5")) == "€1,234.50"


def test_cost_items_after_dev(tmp_path: Path, prices: PriceList) -> None:
    items = cost.cost_items(desired.build(load_shipped("dev", tmp_path), tmp_path), [], "after")
    kinds = Counter(i.kind for i in items)
    assert kinds == {"server": 6, "primary_ipv4": 6, "primary_ipv6": 6, "volume": 1, "load_balancer": 1}
    assert CostItem("volume", "", "fsn1", 50) in items
    assert prices.total(items) == Decimal("65.79")


def _server(name: str, type_: str, location: str, ipv6: bool = True) -> Observed:
    public = {"ipv4": {"ip": "203.0.113.5"}, "ipv6": {"ip": "2001:db8::/64"} if ipv6 else None}
    return Observed("server", 1, name, {}, {"server_type": type_, "location": location,
                                           "public_ipv4": "203.0.113.5"}, False, {"public_net": public})


def test_cost_items_before_from_observed(prices: PriceList) -> None:
    observed = [
        _server("nornos-dev-workers-1", "cx33", "nbg1"),
        _server("nornos-dev-postgres-1", "cx33", "fsn1", ipv6=False),
        Observed("volume", 2, "nornos-dev-postgres-data", {}, {"size": 60, "server": "nornos-dev-postgres-1",
                                                               "location": None}, False),
        Observed("load_balancer", 3, "nornos-dev", {}, {"type": "lb21", "location": "fsn1"}, False),
        Observed("network", 4, "nornos-dev", {}, {"ip_range": "10.0.0.0/16"}, False),
    ]
    items = cost.cost_items([], observed, "before")
    assert items == [
        CostItem("server", "cx33", "nbg1"), CostItem("primary_ipv4", "", "nbg1"), CostItem("primary_ipv6", "", "nbg1"),
        CostItem("server", "cx33", "fsn1"), CostItem("primary_ipv4", "", "fsn1"),
        CostItem("volume", "", "fsn1", 60), CostItem("load_balancer", "lb21", "fsn1"),
    ]
    assert prices.total(items) == Decimal("8.49") * 2 + Decimal("1.00") + Decimal("3.43") + Decimal("21.49")


def test_cost_items_after_keeps_servers_in_their_fallback_location(tmp_path: Path) -> None:
    want = desired.build(load_shipped("dev", tmp_path), tmp_path)
    observed = [_server("nornos-dev-workers-1", "cx23", "nbg1"), _server("nornos-dev-redis-1", "cx23", "hel1")]
    items = cost.cost_items(want, observed, "after")
    assert CostItem("server", "cx33", "nbg1") in items, "stays in the fallback location; the new type counts"
    assert CostItem("server", "cx23", "fsn1") in items  # hel1 is not allowed: it is replaced in fsn1
    assert not [i for i in items if i.location == "hel1"]


def test_cost_items_side_must_be_known() -> None:
    with pytest.raises(ValueError, match="side must be"):
        cost.cost_items([], [], "during")


# -- docs/COSTS.md ---------------------------------------------------------------------------------
def _breakdown(env: str, tmp_path: Path, prices: PriceList) -> dict[str, Any]:
    spec = load_shipped(env, tmp_path)
    items = cost.cost_items(desired.build(spec, tmp_path), [], "after")
    assert {i.location for i in items} == {"fsn1"}

    def part(*kinds: str) -> str:
        return str(prices.total(i for i in items if i.kind in kinds))

    types = Counter(i.type for i in items if i.kind == "server")
    return {
        "servers": str(sum(types.values())),
        "types": ", ".join(f"{n}x {t}" for t, n in sorted(types.items())),
        "servers €": part("server"), "primary IPv4 €": part("primary_ipv4"), "volume €": part("volume"),
        "load balancer €": part("load_balancer"), "total €/month": str(prices.total(items)),
    }


def _doc_rows(header_start: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the Markdown table whose header line starts so."""
    lines = COSTS.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        rows.append(cells)
    return header, rows


def _doc_table(header_start: str) -> list[dict[str, str]]:
    header, rows = _doc_rows(header_start)
    return [dict(zip(header, row, strict=True)) for row in rows]


def test_costs_doc_matches_code(tmp_path: Path, prices: PriceList) -> None:
    """docs/COSTS.md must show what the code computes from the environment files and the catalogue."""
    rows = {r["environment"]: r for r in _doc_table("| environment | servers |")}
    assert sorted(rows) == sorted(SHIPPED)
    for env in SHIPPED:
        (tmp_path / env).mkdir()
        want = _breakdown(env, tmp_path / env, prices)
        row = rows[env]
        got = {k: row[k] for k in want if k != "types"} | {"types": row["server types"]}
        assert got == want, f"docs/COSTS.md row {env} is stale: {row} vs {want}"
    assert rows["dev"]["old plan €/month"] == "about 56"
    assert rows["production"]["old plan €/month"] == "about 260"


def test_costs_doc_mapping_matches_catalogue() -> None:
    """The mapping table states the real cores/memory/disk and the same successors as the code."""
    types = {t["name"]: t for t in CATALOG["server_types"] + CATALOG["_retired_server_types"]}
    header, rows = _doc_rows("| old type |")
    assert header == ["old type", "cores", "memory", "disk", "current type", "cores", "memory", "disk"]
    assert [r[0] for r in rows] == ["cx11", "cx21", "cx31", "cx41", "cx51"]
    for cells in rows:
        old, new = cells[0], cells[4]
        assert catalogue.SUCCESSORS[old] == new
        for name, (cores, memory, disk) in ((old, cells[1:4]), (new, cells[5:8])):
            t = types[name]
            assert (cores, memory, disk) == (str(t["cores"]), f"{t['memory']:g} GB", f"{t['disk']} GB")
        assert types[new]["memory"] >= types[old]["memory"] and types[new]["cores"] >= types[old]["cores"]
        assert types[new]["cpu_type"] == types[old]["cpu_type"] and not types[new]["deprecation"]


def test_costs_doc_agent_workers_meet_the_seed() -> None:
    """The agent workers have at least the seed's vCPUs and memory (CX41 in dev, CX51 in production),
    staging's lie between dev's and production's, and the table says what the env files hold."""
    types = {t["name"]: t for t in CATALOG["server_types"] + CATALOG["_retired_server_types"]}
    header, rows = _doc_rows("| environment | agent workers |")
    assert header == ["environment", "agent workers", "seed", "now", "cores", "memory"]
    table = {r[0]: r for r in rows}
    assert sorted(table) == sorted(SHIPPED)
    agents = {env: shipped_raw(env)["pools"]["agents"] for env in SHIPPED}
    for env, (_, count, seed, now, cores, memory) in table.items():
        assert (int(count), now) == (agents[env]["count"], agents[env]["server_type"]), env
        assert (cores, memory) == (str(types[now]["cores"]), f"{types[now]['memory']:g} GB"), env
        assert catalogue.SUCCESSORS.get(seed.split()[0], now) == now, env
    for env, old in (("dev", "cx41"), ("production", "cx51")):
        assert table[env][2].startswith(old)
        new = types[agents[env]["server_type"]]
        assert new["cores"] >= types[old]["cores"] and new["memory"] >= types[old]["memory"], env
    dev, staging, production = (types[agents[env]["server_type"]]["memory"] for env in SHIPPED)
    assert dev <= staging <= production


def test_costs_doc_states_price_basis() -> None:
    text = COSTS.read_text()
    for phrase in ("net EUR excluding VAT", "fsn1", "2026-06-15", "primary IPv4", re.escape("€0.0572")):
        assert re.search(phrase, text), phrase


def test_an_item_without_a_price_counts_zero_and_is_named() -> None:
    from nornos_infra.cost import CostItem, PriceList

    prices = PriceList({"currency": "EUR", "volume": {"price_per_gb_month": {"net": "0.05"}},
                        "server_types": [{"name": "cx23", "prices": [
                            {"location": "fsn1", "price_monthly": {"net": "5.49"}}]}]})
    total = prices.total([CostItem("server", "cx23", "fsn1"), CostItem("server", "cx21", "fsn1"),
                          CostItem("volume", "", "fsn1", 10)])
    assert str(total) == "5.99"
    assert prices.unpriced == {"cx21 in fsn1"}
