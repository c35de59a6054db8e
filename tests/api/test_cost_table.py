"""``python -m nornos_infra.cost_table <env>`` (what ``invoke cost --env E`` runs) against localcloud,
as a subprocess on the shipped env files: a row per billed resource, priced from GET /pricing, the
total as docs/COSTS.md states it and the seed's figure beside it; a mistake is one line, exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import READONLY_TOKEN, TOKEN, LocalCloud
from tests.unit.test_pricing import _doc_table

ROOT = Path(__file__).resolve().parents[2]
SEED = "seed plan (CX11..CX51, 2023/24 prices)"


def run(lc: LocalCloud, *args: str, token: str = TOKEN,
        overrides: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HCLOUD_ENDPOINT": lc.endpoint, "HCLOUD_TOKEN": token, "COLUMNS": "80"}
    env.pop("NORNOS_OVERRIDES", None)
    if overrides is not None:
        env["NORNOS_OVERRIDES"] = str(overrides)
    return subprocess.run([sys.executable, "-m", "nornos_infra.cost_table", *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0 and result.stderr == "", (result.returncode, result.stdout, result.stderr)
    return result.stdout


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert result.stdout == ""
    return lines[0]


def expected(env: str) -> dict[str, Any]:
    """What environments/<env>.yaml bills: servers by pool and type, volumes, the load balancer."""
    raw = yaml.safe_load((ROOT / "environments" / f"{env}.yaml").read_text())
    servers = {f"nornos-{env}-{name}-{i}": (name, pool["server_type"])
               for name, pool in raw["pools"].items() for i in range(1, pool["count"] + 1)}
    volumes = {f"nornos-{env}-{name}-data": (name, f"{pool['volume_gb']} GB")
               for name, pool in raw["pools"].items() if pool.get("volume_gb")}
    return {"servers": servers, "volumes": volumes, "lb": (f"nornos-{env}", raw["load_balancer"]["type"])}


def doc_total(env: str) -> Decimal:
    rows = {r["environment"]: r for r in _doc_table("| environment | servers |")}
    return Decimal(rows[env]["total €/month"])


def euros(cell: str) -> Decimal:
    assert cell.startswith("€"), cell
    return Decimal(cell[1:].replace(",", ""))


@pytest.fixture
def lc(localcloud: LocalCloud) -> LocalCloud:
    localcloud.reset()
    localcloud.side("DELETE", "requests")
    return localcloud


@pytest.mark.parametrize(("env", "seed"), [("production", "about €260"), ("dev", "about €56")])
def test_every_resource_priced_and_the_total_beside_the_seed(lc: LocalCloud, env: str, seed: str) -> None:
    lines = ok(run(lc, env)).splitlines()
    assert lines[0] == (f"Monthly cost of {env}, priced for fsn1 from the live price list (GET /pricing), "
                        "net EUR excluding VAT")
    rows = [line.split() for line in lines[4:-2]]
    want = expected(env)
    servers = {r[1]: (r[2], r[3], euros(r[4])) for r in rows if r[0] == "server"}
    assert {name: (pool, type_) for name, (pool, type_, _) in servers.items()} == want["servers"]
    ipv4 = {r[2]: (r[3], euros(r[4])) for r in rows if r[:2] == ["primary", "IPv4"]}
    assert ipv4 == {name: (pool, Decimal("0.50")) for name, (pool, _) in want["servers"].items()}
    volumes = {r[1]: (r[2], f"{r[3]} {r[4]}") for r in rows if r[0] == "volume"}
    assert volumes == want["volumes"]
    lbs = [(r[2], r[3]) for r in rows if r[:2] == ["load", "balancer"]]
    assert lbs == [want["lb"]]
    assert rows[-1][:2] == ["primary", "IPv6"] and rows[-1][-1] == "€0.00"
    assert len(rows) == 2 * len(want["servers"]) + len(want["volumes"]) + 1 + 1
    total_line = lines[-1]
    total = euros(total_line.split()[1])
    assert total_line.split()[0] == "total"
    assert sum(euros(r[-1]) for r in rows) == total == doc_total(env)
    assert total_line.endswith(f"   {SEED}: {seed}")
    if env == "production":
        assert "cx53" in {type_ for name, (_, type_, _) in servers.items() if "-agents-" in name}
        assert "260" in total_line.split("€")[-1]
    # one read, nothing written: the price list is all it asks for
    assert [(r["method"], r["path"], r["status"]) for r in lc.requests_log()] == [("GET", "/pricing", 200)]


def test_json_agrees_with_the_doc(lc: LocalCloud) -> None:
    data = json.loads(ok(run(lc, "production", "--json")))
    assert (data["env"], data["location"], data["currency"], data["vat"]) == ("production", "fsn1", "EUR", "excluded")
    assert Decimal(data["total"]) == sum(Decimal(r["monthly"]) for r in data["rows"]) == doc_total("production")
    assert data["seed"]["monthly"] == 260
    assert {r["name"] for r in data["rows"] if r["kind"] == "server"} == set(expected("production")["servers"])


def test_staging_says_the_seed_states_no_figure(lc: LocalCloud) -> None:
    total_line = ok(run(lc, "staging")).splitlines()[-1]
    assert euros(total_line.split()[1]) == doc_total("staging")
    assert total_line.endswith(f"{SEED}: not stated for staging (only dev about €56, production about €260)")


def test_a_read_only_token_is_enough(lc: LocalCloud) -> None:
    assert "total" in ok(run(lc, "dev", token=READONLY_TOKEN))


def test_with_localcloud_overrides_as_invoke_passes_them(lc: LocalCloud, tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(yaml.safe_dump({"endpoint": lc.endpoint, "admin_cidrs": ["198.51.100.1/32"],
                                         "ssh_keys": [{"name": "admin", "public_key_file": str(tmp_path / "k.pub")}]}))
    assert euros(ok(run(lc, "dev", overrides=overrides)).splitlines()[-1].split()[1]) == doc_total("dev")
    overrides.write_text(yaml.safe_dump({"endpoint": "http://127.0.0.1:1/v1"}))
    assert "is for http://127.0.0.1:1/v1, not" in one_line(run(lc, "dev", overrides=overrides))


@pytest.mark.parametrize(("args", "token", "needle"), [
    (["qa"], TOKEN, "qa.yaml: file not found; environments live in environments/<env>.yaml"),
    (["../production"], TOKEN, "'../production' is not an environment name"),
    (["Production"], TOKEN, "'Production' is not an environment name"),
    (["production"], "not-the-token", "rejected the token"),
    (["production"], "", "no API token"),
])
def test_bad_input_is_one_line_and_exit_1(lc: LocalCloud, args: list[str], token: str, needle: str,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HCLOUD_CONFIG", str(tmp_path / "no-cli.toml"))  # no hcloud CLI context to fall back on
    line = one_line(run(lc, *args, token=token))
    assert needle in line, line
    assert not [r for r in lc.requests_log() if r["method"] != "GET"], "nothing is written"


def test_help(lc: LocalCloud) -> None:
    result = run(lc, "--help")
    assert result.returncode == 0 and result.stderr == ""
    for needle in ("env", "--json", "GET /pricing", "net EUR excluding VAT", "HCLOUD_TOKEN", "HCLOUD_ENDPOINT",
                   "NORNOS_OVERRIDES"):
        assert needle in result.stdout, needle
