"""nornos_infra.cost_table without an API: the rows of an env, priced by localcloud's price list."""

from __future__ import annotations

import ast
import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nornos_infra import cost, cost_table
from nornos_infra.cloud import desired
from tests.unit.test_spec import load_raw, load_shipped, shipped_raw

ROOT = Path(__file__).resolve().parents[2]
PRICING: dict[str, Any] = json.loads((ROOT / "localcloud" / "data" / "catalog.json").read_text())["pricing"]


def table_of(env: str, tmp_path: Path, pricing: dict[str, Any] = PRICING) -> cost_table.CostTable:
    return cost_table.build(load_shipped(env, tmp_path), pricing)


def test_production_rows(tmp_path: Path) -> None:
    table = table_of("production", tmp_path)
    servers = {r.name: r for r in table.rows if r.kind == "server"}
    assert len(servers) == 12
    assert {n: (r.pool, r.type) for n, r in servers.items() if "agents" in n} == {
        f"nornos-production-agents-{i}": ("agents", "cx53") for i in (1, 2, 3)}
    for kind in ("primary_ipv4", "primary_ipv6"):
        assert sorted(r.name for r in table.rows if r.kind == kind) == sorted(servers)
    volume, = (r for r in table.rows if r.kind == "volume")
    assert (volume.name, volume.pool, volume.type, volume.monthly) == (
        "nornos-production-postgres-data", "postgres", "500 GB", Decimal("28.6"))
    lb, = (r for r in table.rows if r.kind == "load_balancer")
    assert (lb.name, lb.pool, lb.type, lb.monthly) == ("nornos-production", "", "lb11", Decimal("7.49"))
    assert {r.location for r in table.rows} == {table.location} == {"fsn1"}
    assert sum(r.monthly or 0 for r in table.rows) == table.total == Decimal("257.97")
    assert (table.seed, table.unpriced) == (260, [])


def test_the_rows_are_what_the_plan_bills(tmp_path: Path) -> None:
    """Row for row the items cost.cost_items bills for the env, so the table and the plan agree."""
    for env in ("dev", "staging", "production"):
        (tmp_path / env).mkdir()
        spec = load_shipped(env, tmp_path / env)
        table = cost_table.build(spec, PRICING)
        billed = cost.cost_items(desired.build(spec, tmp_path / env), [], "after")
        assert len(table.rows) == len(billed)
        assert table.total == cost.PriceList(PRICING).total(billed)


def test_text_has_a_row_per_billed_resource_and_the_seed_beside_the_total(tmp_path: Path) -> None:
    text = cost_table.render(table_of("dev", tmp_path))
    lines = text.splitlines()
    assert lines[0] == ("Monthly cost of dev, priced for fsn1 from the live price list (GET /pricing), net EUR "
                        "excluding VAT")
    assert lines[2].split() == ["resource", "name", "pool", "type", "€/month"]
    body = [line.split() for line in lines[4:-2]]
    assert ["server", "nornos-dev-agents-1", "agents", "cx43", "€15.99"] in body
    assert ["primary", "IPv4", "nornos-dev-agents-1", "agents", "€0.50"] in body
    assert ["volume", "nornos-dev-postgres-data", "postgres", "50", "GB", "€2.86"] in body
    assert ["load", "balancer", "nornos-dev", "lb11", "€7.49"] in body
    assert ["primary", "IPv6", "6x", "(one", "per", "server)", "€0.00"] in body  # free: one line
    assert len(body) == 6 * 2 + 3
    assert lines[-1].split()[:2] == ["total", "€65.79"]
    assert lines[-1].endswith("seed plan (CX11..CX51, 2023/24 prices): about €56")
    width, = {len(line) for line in [lines[2], *lines[4:-2]]}  # the prices right-aligned in one column
    assert lines[-1][:width].endswith(" €65.79") and lines[-2] == lines[3] == "-" * width


def test_staging_has_no_seed_figure_and_says_so(tmp_path: Path) -> None:
    table = table_of("staging", tmp_path)
    assert table.seed is None
    assert cost_table.render(table).splitlines()[-1].endswith(
        "seed plan (CX11..CX51, 2023/24 prices): not stated for staging (only dev about €56, production about €260)")
    assert cost_table.as_json(table)["seed"]["monthly"] is None


def test_json(tmp_path: Path) -> None:
    data = cost_table.as_json(table_of("production", tmp_path))
    assert {k: data[k] for k in ("env", "location", "currency", "vat", "total")} == {
        "env": "production", "location": "fsn1", "currency": "EUR", "vat": "excluded", "total": "257.97"}
    assert data["seed"]["monthly"] == 260
    assert {"kind": "volume", "name": "nornos-production-postgres-data", "pool": "postgres", "type": "500 GB",
            "location": "fsn1", "monthly": "28.60"} in data["rows"]
    assert sum(Decimal(r["monthly"]) for r in data["rows"]) == Decimal(data["total"])
    json.dumps(data)


def test_a_type_without_a_price_is_named_and_left_out_of_the_total(tmp_path: Path) -> None:
    pricing = copy.deepcopy(PRICING)
    pricing["server_types"] = [t for t in pricing["server_types"] if t["name"] != "cx43"]
    table = table_of("dev", tmp_path, pricing)
    agent, = (r for r in table.rows if r.kind == "server" and r.pool == "agents")
    assert agent.monthly is None and table.unpriced == ["cx43 in fsn1"]
    assert table.total == Decimal("65.79") - Decimal("15.99")
    text = cost_table.render(table)
    assert "no price" in text and text.splitlines()[-1] == (
        "not priced (not in the price list, left out of the total): cx43 in fsn1")


def test_no_ssh_key_is_read(tmp_path: Path) -> None:
    """SSH keys cost nothing: the table needs no admin key on the machine that prints it."""
    raw = shipped_raw("dev")
    raw["ssh_keys"] = [{"name": "admin", "public_key_file": str(tmp_path / "absent.pub")}]
    table = cost_table.build(load_raw(raw, tmp_path, "dev"), PRICING)
    assert table.total == Decimal("65.79")


def test_bad_names_and_files_fail_before_any_request(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HCLOUD_ENDPOINT", "http://127.0.0.1:1/v1")  # never asked: nothing listens
    monkeypatch.setenv("HCLOUD_TOKEN", "token")
    monkeypatch.delenv("NORNOS_OVERRIDES", raising=False)
    for argv, needle in ((["../dev"], "is not an environment name"),
                         (["ci", "--env-dir", str(tmp_path)], "ci.yaml: file not found")):
        assert cost_table.main(argv) == 1
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and needle in err, err


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cost_table.main([])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "required: env" in err and "--help" in err


def test_imports_neither_the_command_line_nor_the_roles() -> None:
    """The import contracts (pyproject.toml) do not list this module; it keeps to them all the same."""
    tree = ast.parse((ROOT / "nornos_infra" / "cost_table.py").read_text())
    names = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    names |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "nornos_infra.cost" in names
    assert not {n for n in names if n.startswith(("nornos_infra.cli", "nornos_infra.roles", "localcloud"))}
