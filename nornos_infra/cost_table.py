"""``python -m nornos_infra.cost_table <env>`` (``invoke cost --env E``): the monthly cost of an
environment, one row per billed resource, beside the seed's figure.

Why: the sizes follow the seed (the project's original Terraform plan on CX11..CX51) and its
totals, about €56 a month for dev and €260 for production; ``provision.py --dry-run`` shows
only the total before and after a change. This prints what the env file costs when created
from nothing in its location: every server with its pool and type, its primary IPv4 (and
IPv6), the volumes with their size and the load balancer with its type, each priced from the
live price list (``GET /pricing``), then the total and the seed's figure beside it.

Nothing is duplicated: the env file is loaded as provision.py loads it (``NORNOS_OVERRIDES``
merged over it), the API reached as provision.py reaches it (``HCLOUD_TOKEN``,
``HCLOUD_ENDPOINT``), what is billed comes from :func:`nornos_infra.cost.cost_items` and the
prices from :class:`nornos_infra.cost.PriceList`, as in the plan. Net EUR excluding VAT.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

from hcloud import APIException

from nornos_infra import console, cost, overrides, paths, spec
from nornos_infra.cloud import desired as desired_state
from nornos_infra.cloud.connection import Connection
from nornos_infra.cloud.model import POOL_LABEL, Desired
from nornos_infra.errors import UserError

EXIT_OK, EXIT_ERROR = 0, 1
# The seed's monthly totals as the issue quotes them (2023/24 CX prices, not recomputed); it
# stated none for staging. docs/COSTS.md quotes the same figures.
SEED_MONTHLY = {"dev": 56, "production": 260}
SEED = "seed plan (CX11..CX51, 2023/24 prices)"
TITLES = {"server": "server", "primary_ipv4": "primary IPv4", "primary_ipv6": "primary IPv6", "volume": "volume",
          "load_balancer": "load balancer"}


@dataclass(frozen=True)
class Row:
    """One billed item of one resource; ``monthly`` None: the price list has no price for it."""

    kind: str  # a cost item kind: server, primary_ipv4, primary_ipv6, volume, load_balancer
    name: str  # the resource (for an IP: its server)
    pool: str  # "" for the load balancer
    type: str  # server or load balancer type; "<n> GB" for a volume; "" for an IP
    location: str
    monthly: Decimal | None


@dataclass(frozen=True)
class CostTable:
    env: str
    location: str  # the env file's location: where everything is priced
    rows: list[Row]
    total: Decimal  # of the priced rows
    unpriced: list[str]  # "<type> in <location>" the price list does not carry

    @property
    def seed(self) -> int | None:
        return SEED_MONTHLY.get(self.env)

    def seed_text(self) -> str:
        if self.seed is not None:
            return f"{SEED}: about €{self.seed}"
        stated = ", ".join(f"{env} about €{amount}" for env, amount in sorted(SEED_MONTHLY.items()))
        return f"{SEED}: not stated for {self.env} (only {stated})"


def build(env: spec.EnvSpec, pricing: dict[str, Any]) -> CostTable:
    """The rows of ``env`` created from nothing, priced by ``pricing`` (the body of GET /pricing)."""
    # SSH keys cost nothing; without them no key file is read, so the table needs no admin key
    wanted = desired_state.build(env.model_copy(update={"ssh_keys": []}), Path("."))
    prices = cost.PriceList(pricing)
    rows = [_row(d, item, prices) for d, items in _attributed(wanted) for item in items]
    total = prices.total(cost.cost_items(wanted, [], "after"))
    return CostTable(env.name, env.location, rows, total, sorted(prices.unpriced))


def _attributed(wanted: list[Desired]) -> list[tuple[Desired, list[cost.CostItem]]]:
    """Each resource with the items cost_items bills for it: a server's from it alone, any other
    resource's as what it adds to the servers (a volume is priced where its server is)."""
    servers = [d for d in wanted if d.kind == "server"]
    base = Counter(cost.cost_items(servers, [], "after"))
    out: list[tuple[Desired, list[cost.CostItem]]] = []
    for d in wanted:
        if d.kind == "server":
            items = cost.cost_items([d], [], "after")
        else:
            items = list((Counter(cost.cost_items([*servers, d], [], "after")) - base).elements())
        if items:
            out.append((d, items))
    billed = Counter(cost.cost_items(wanted, [], "after"))
    if sum((Counter(items) for _, items in out), Counter()) != billed:  # cost_items learnt a new rule
        raise RuntimeError("the rows do not add up to what cost.cost_items bills for the environment")
    return out


def _row(d: Desired, item: cost.CostItem, prices: cost.PriceList) -> Row:
    what = f"{item.quantity} GB" if item.kind == "volume" else item.type
    try:
        monthly: Decimal | None = prices.monthly(item)
    except KeyError:
        monthly = None
    return Row(item.kind, d.name, d.labels.get(POOL_LABEL, ""), what, item.location, monthly)


def money(amount: Decimal | None) -> str:
    return "no price" if amount is None else cost.euros(amount)


def render(table: CostTable) -> str:
    """Aligned plain text: the rows (free ones folded into one line per kind), the total, the seed."""
    head = ("resource", "name", "pool", "type", "€/month")
    free = Counter(r.kind for r in table.rows if r.monthly == 0)
    lines = [(TITLES.get(r.kind, r.kind), r.name, r.pool, r.type, money(r.monthly))
             for r in table.rows if r.monthly != 0]
    lines += [(TITLES.get(kind, kind), f"{n}x (one per server)" if kind == "primary_ipv6" else f"{n}x", "", "",
               money(Decimal(0))) for kind, n in free.items()]
    total = ("total", "", "", "", money(table.total))
    widths = [max(len(line[i]) for line in [head, *lines, total]) for i in range(len(head))]

    def fmt(line: Sequence[str]) -> str:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=False)]
        return "  ".join([*cells, line[-1].rjust(widths[-1])])

    rule = "-" * len(fmt(head))
    out = [f"Monthly cost of {table.env}, priced for {table.location} from the live price list (GET /pricing), "
           "net EUR excluding VAT", "", fmt(head), rule, *(fmt(line) for line in lines), rule,
           f"{fmt(total)}   {table.seed_text()}"]
    if table.unpriced:
        out.append(f"not priced (not in the price list, left out of the total): {', '.join(table.unpriced)}")
    return "\n".join(out) + "\n"


def as_json(table: CostTable) -> dict[str, Any]:
    return {
        "env": table.env, "location": table.location, "currency": "EUR", "vat": "excluded",
        "source": "GET /pricing",
        "rows": [{"kind": r.kind, "name": r.name, "pool": r.pool or None, "type": r.type or None,
                  "location": r.location, "monthly": None if r.monthly is None else str(r.monthly.quantize(
                      Decimal("0.01")))} for r in table.rows],
        "total": str(table.total), "unpriced": table.unpriced,
        "seed": {"monthly": table.seed, "text": table.seed_text()},
    }


def load(env: str, env_dir: Path) -> tuple[spec.EnvSpec, Connection]:
    """The env file and the API as provision.py has them: name, file, overrides, token, endpoint."""
    spec.check_name(env)
    extra = overrides.from_environment()
    loaded = spec.load(env_dir / f"{env}.yaml", extra.settings if extra else None, str(extra.source) if extra else "")
    conn = Connection.from_environment()
    if extra is not None:
        extra.check_endpoint(conn.endpoint)
    return loaded, conn


def fetch(env: str, env_dir: Path) -> CostTable:
    loaded, conn = load(env, env_dir)
    pricing = conn.request("GET", "/pricing", "read prices").get("pricing")
    if not isinstance(pricing, dict):
        raise UserError(f"the API at {conn.endpoint} answered GET /pricing without a price list")
    return build(loaded, pricing)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m nornos_infra.cost_table",
                description="The monthly cost of environments/<env>.yaml, one row per billed resource, priced "
                            "from the live price list (GET /pricing, net EUR excluding VAT), with the seed "
                            "plan's figure beside the total. Token and endpoint as for provision.py "
                            "(HCLOUD_TOKEN, HCLOUD_ENDPOINT, NORNOS_OVERRIDES).")
    p.add_argument("env", help="environment name: environments/<env>.yaml")
    p.add_argument("--json", action="store_true", help="print the table as JSON (for automation)")
    p.add_argument("--env-dir", type=Path, default=paths.environments_dir(), help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        table = fetch(args.env, args.env_dir)
    except UserError as exc:  # a SpecError too: one line, its problems joined
        console.fail(str(exc))
        return EXIT_ERROR
    except APIException as exc:
        console.fail(f"the API refused a request: {exc.message} ({exc.code})")
        return EXIT_ERROR
    except Exception as exc:  # a bug or an API that answers nonsense: one line, the trace on request
        console.unexpected(exc)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(as_json(table), indent=2))
    else:
        print(render(table), end="")
    if table.unpriced:
        console.fail(f"no price for {', '.join(table.unpriced)}: the total leaves them out")
        return EXIT_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
