"""How plans and progress look: Terraform's symbols (+ ~ -/+ -), reasons, cost before and after."""

from __future__ import annotations

import os
import sys
import traceback
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.markup import escape

from nornos_infra.cloud.model import Op
from nornos_infra.cloud.plan import Plan
from nornos_infra.cost import euros

STYLE = {Op.CREATE: "green", Op.UPDATE: "yellow", Op.RESIZE: "yellow", Op.REPLACE: "magenta", Op.DELETE: "red",
         Op.NOOP: "dim"}
KIND_TITLE = {"ssh_key": "ssh key", "placement_group": "placement group", "load_balancer": "load balancer"}

# soft_wrap: a plan line stays one line in logs and CI output, whatever the terminal width
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_plan(plan: Plan, location: str, verbose: bool = False) -> None:
    out.print(f"[bold]Plan for {plan.env}[/bold] ({location})")
    width = max((len(KIND_TITLE.get(c.kind, c.kind)) + len(c.name) for c in plan.changes), default=20) + 2
    for change in plan.changes:
        if change.op is Op.NOOP and not verbose:
            continue
        title = f"{KIND_TITLE.get(change.kind, change.kind)} {change.name}"
        reasons = "; ".join(change.reasons) if change.reasons else "unchanged"
        out.print(f"  [{STYLE[change.op]}]{change.op.symbol:>3} {escape(title):<{width}}[/] {escape(reasons)}")
    for note in plan.notes:
        out.print(f"  [dim]note: {escape(note)}[/dim]")
    counts = plan.counts()
    summary = ", ".join(f"{counts[op.value]} to {op.value}" for op in (Op.CREATE, Op.UPDATE, Op.RESIZE, Op.REPLACE,
                                                                       Op.DELETE) if counts[op.value])
    out.print(f"[bold]Plan:[/bold] {summary or 'no changes'} ({counts[Op.NOOP.value]} unchanged).")
    if plan.cost is not None:
        delta = plan.cost.after - plan.cost.before
        sign = "+" if delta >= 0 else "-"
        out.print(f"[bold]Monthly cost:[/bold] {euros(plan.cost.before)} -> {euros(plan.cost.after)} "
                  f"({sign}{euros(abs(delta))}), net EUR excl. VAT, from GET /pricing")
        if plan.cost.unpriced:
            out.print("  [dim]not priced (no longer in the price list): "
                      f"{escape(', '.join(sorted(plan.cost.unpriced)))}[/dim]")
    for problem in plan.problems:
        err.print(f"[red]error:[/red] {escape(problem)}")


def plan_json(plan: Plan) -> dict[str, Any]:
    def money(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {
        "env": plan.env,
        "changes": [{"op": c.op.value, "kind": c.kind, "name": c.name, "reasons": c.reasons,
                     "steps": [s.what for s in c.steps], "id": c.observed.id if c.observed else None}
                    for c in plan.changes],
        "counts": plan.counts(),
        "problems": plan.problems,
        "notes": plan.notes,
        "cost": {"currency": "EUR", "before": money(plan.cost.before if plan.cost else None),
                 "after": money(plan.cost.after if plan.cost else None)},
    }


def fail(message: str) -> None:
    """The one line a user sees for a mistake they can fix."""
    err.print(f"[red]error:[/red] {escape(message)}")


def unexpected(exc: Exception, consequence: str = "") -> None:
    """A bug, or an API that answers nonsense: one line; the traceback only with NORNOS_DEBUG set."""
    if os.environ.get("NORNOS_DEBUG"):
        traceback.print_exception(exc)
    fail(f"unexpected error: {type(exc).__name__}: {str(exc)[:200]}; {consequence}run again with NORNOS_DEBUG=1 "
         "for the traceback and report it")


def interactive() -> bool:
    return sys.stdin.isatty()
