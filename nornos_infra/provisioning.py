"""``python provision.py <env>``: validate, observe by label, plan, show, confirm, apply, write
the inventory. Every user mistake ends in one line and exit status 1 with nothing changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hcloud import APIException

from nornos_infra import admin_access, catalogue, console, cost, inventory, overrides, spec
from nornos_infra.cloud import desired as desired_state
from nornos_infra.cloud.apply import Applier
from nornos_infra.cloud.connection import Connection
from nornos_infra.cloud.model import Desired, Observed, Op
from nornos_infra.cloud.observe import observe, observe_cluster_leftovers
from nornos_infra.cloud.plan import Plan, make_plan
from nornos_infra.errors import SpecError, UserError

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


@dataclass
class Options:
    env: str
    env_dir: Path
    inventory_dir: Path
    dry_run: bool = False
    yes: bool = False
    destroy: bool = False
    force: bool = False
    json: bool = False
    detailed_exitcode: bool = False
    check: bool = False
    concurrency: int = 16
    admin_ip: str | None = None
    allow_lockout: bool = False
    allow_wide_admin_cidrs: bool = False
    verbose: bool = False
    replace_volumes: bool = False
    refresh_inventory: bool = False  # with --dry-run/--check: write the inventory of the live servers


def run(opts: Options) -> int:
    try:
        return _run(opts)
    except SpecError as exc:
        for problem in exc.problems:
            console.fail(f"{exc.source}: {problem}")
        return EXIT_ERROR
    except UserError as exc:
        console.fail(str(exc))
        return EXIT_ERROR
    except APIException as exc:
        console.fail(f"the API refused a request: {exc.message} ({exc.code}); nothing after it was changed, "
                     "fix the cause and run again")
        return EXIT_ERROR
    except KeyboardInterrupt:
        console.fail("interrupted; run again to converge (what was created is found by its labels)")
        return 130
    except Exception as exc:  # a bug or an API that answers nonsense: one line, the trace on request
        console.unexpected(exc, "nothing after it was changed; ")
        return EXIT_ERROR


@dataclass
class Target:
    """What the checks established: the env, where its file is, the API, and what it should be."""

    env: spec.EnvSpec
    env_file: Path
    conn: Connection
    desired: list[Desired]
    local: bool  # localcloud: placeholder values are expected, and its machines have no internet


def _run(opts: Options) -> int:
    target = _checked_target(opts)
    if target is None:
        return EXIT_ERROR
    observed, plan = _plan(target, opts)
    if opts.json:
        print(json.dumps(console.plan_json(plan), indent=2))
    else:
        console.print_plan(plan, target.env.location, opts.verbose)
    if plan.problems:
        return EXIT_ERROR
    pending = plan.pending
    if (opts.dry_run or opts.check) and opts.refresh_inventory and not opts.destroy:
        _write_inventory(target, observed, opts)  # the servers as they are: what a hosts plan logs in to
    if opts.dry_run or opts.check:
        if opts.check and pending:
            console.err.print(f"drift: {len(pending)} resource(s) differ from {target.env_file}")
        return EXIT_CHANGES if pending and (opts.detailed_exitcode or opts.check) else EXIT_OK
    if not pending:
        if not opts.destroy:
            _write_inventory(target, observed, opts)
        return EXIT_OK
    return _apply(target, plan, opts)


def _checked_target(opts: Options) -> Target | None:
    """Everything that needs no write is checked before the first one, cheapest first: the
    name, the env file, the admin networks, token and endpoint (their form), the SSH keys
    (parsed here), the live catalogue; before applying, the token's write permission."""
    spec.check_name(opts.env)
    env_file = opts.env_dir / f"{opts.env}.yaml"
    extra = overrides.from_environment()
    env = spec.load(env_file, extra.settings if extra else None, str(extra.source) if extra else "")
    if not opts.allow_wide_admin_cidrs:
        wide = spec.wide_admin_problems(env)
        if wide:
            raise SpecError(str(env_file), wide)
    conn = Connection.from_environment()
    if extra is not None:
        extra.check_endpoint(conn.endpoint)
        console.err.print(f"[dim]{extra.describe()}[/dim]")
    desired = [] if opts.destroy else desired_state.build(env, env_file.parent)  # reads the keys: fails early
    problems = catalogue.check(env, conn)
    if problems:
        for problem in problems:
            console.fail(f"{env_file}: {problem}")
        return None
    target = Target(env, env_file, conn, desired, conn.is_localcloud)
    _check_placeholders(env, opts, target.local)
    _check_lockout(env, conn, opts)
    return target


def _plan(target: Target, opts: Options) -> tuple[list[Observed], Plan]:
    """The cloud as it is (by label), and the plan from it to the env file, with its cost."""
    foreign_keys: list[Observed] = []
    observed = observe(target.conn, target.env.name, foreign_keys)
    if opts.destroy:
        observed += observe_cluster_leftovers(target.conn, observed)
    prices = target.conn.request("GET", "/pricing", "read prices")["pricing"]
    monthly = cost.estimate(prices, target.desired, observed)
    return observed, make_plan(target.env.name, target.desired, observed, foreign_keys,
                               replace_volumes=opts.replace_volumes, cost=monthly)


def _apply(target: Target, plan: Plan, opts: Options) -> int:
    conn, pending = target.conn, plan.pending
    conn.check_write_access()  # a read-only token: refused here, before the first write
    _confirm(plan, opts)
    applier = Applier(conn, plan, force=opts.force, concurrency=opts.concurrency,
                      log=(lambda m: console.err.print(f"  {m}")) if not opts.json else (lambda m: None))
    with console.err.status(f"applying {len(pending)} change(s)"):
        outcome = applier.run()
    if outcome.failed:
        for change, message in outcome.failed:
            console.fail(f"{change.op.value} {change.kind} {change.name}: {message}")
        skipped = f", {len(outcome.skipped)} not started" if outcome.skipped else ""
        console.fail(f"{len(outcome.failed)} change(s) failed, {len(outcome.done)} done{skipped}; "
                     "run again to converge")
        return EXIT_ERROR
    if opts.destroy:
        inventory_path = opts.inventory_dir / f"{target.env.name}.py"
        inventory_path.unlink(missing_ok=True)
        inventory_path.with_suffix(".known_hosts").unlink(missing_ok=True)
        console.err.print(f"destroyed {len(outcome.done)} resource(s) of {target.env.name}")
        return EXIT_OK
    _write_inventory(target, observe(conn, target.env.name), opts)
    console.err.print(f"applied {len(outcome.done)} change(s) to {target.env.name}")
    return EXIT_OK


def _changes_nothing(opts: Options) -> bool:
    """A plan, a drift check or a destroy leaves no firewall behind that could lock you out:
    a warning, not a refusal (so a fresh clone can plan any env with no edits)."""
    return opts.dry_run or opts.check or opts.destroy


def _check_placeholders(env: spec.EnvSpec, opts: Options, local: bool) -> None:
    """The shipped env files hold documentation addresses in admin_cidrs until a team puts its
    own there; a real cloud never gets them (localcloud's own address is one of them)."""
    placeholders = spec.placeholder_cidrs(env)
    if not placeholders or local:
        return
    message = (f"admin_cidrs {', '.join(placeholders)} is a documentation placeholder (RFC 5737/3849), not your "
               f"network; put your VPN or office egress in environments/{env.name}.yaml")
    if not _changes_nothing(opts):
        raise UserError(message)
    console.err.print(f"[yellow]warning:[/yellow] {message} before applying")


def _check_lockout(env: spec.EnvSpec, conn: Connection, opts: Options) -> None:
    address = admin_access.find_address(conn, opts.admin_ip)
    if address is None:
        console.err.print("[yellow]warning:[/yellow] could not find this machine's public address; make sure "
                          f"admin_cidrs ({', '.join(map(str, env.admin_cidrs))}) include it, or pass --admin-ip")
        return
    if not admin_access.covered(env, address):
        message = (f"this machine ({address}) is not in admin_cidrs ({', '.join(map(str, env.admin_cidrs))}): "
                   "SSH and the Kubernetes API would be closed to you")
        if opts.allow_lockout or _changes_nothing(opts):
            reason = "--allow-lockout" if opts.allow_lockout else "applying would be refused"
            console.err.print(f"[yellow]warning:[/yellow] {message} ({reason})")
            return
        raise UserError(message + "; add it to admin_cidrs, or pass --allow-lockout if that is intended")


def _confirm(plan: Plan, opts: Options) -> None:
    destructive = sorted(plan.destructive, key=lambda c: c.kind != "volume")  # data first: never cut off by "..."
    protected = [c for c in destructive if c.observed is not None and c.observed.protected]
    if protected and not opts.force:
        names = ", ".join(f"{c.kind} {c.name}" for c in protected[:5])
        raise UserError(f"{len(protected)} protected resource(s) would be deleted or replaced ({names}); "
                        "nothing was changed; pass --force to lift protection and go ahead")
    if not destructive or opts.yes:
        return
    listed = ", ".join(f"{c.kind} {c.name}" for c in destructive[:5]) + (", ..." if len(destructive) > 5 else "")
    question = f"{len(destructive)} resource(s) will be deleted or replaced ({listed})"
    if not console.interactive():
        raise UserError(f"{question}; nothing was changed: review the plan and re-run with --yes")
    answer = console.out.input(f"{question}. Type 'yes' to go ahead: ")
    if answer.strip() != "yes":
        raise UserError("not confirmed; nothing was changed")


def _write_inventory(target: Target, observed: list[Observed], opts: Options) -> None:
    """The inventory and the known_hosts file it names (both machine-local, never committed)."""
    path = opts.inventory_dir / f"{target.env.name}.py"
    hosts_file = path.with_suffix(".known_hosts").resolve()
    hosts_text, unpinned = inventory.known_hosts(observed)
    access = inventory.Access(hosts_file, target.local, target.env_file.parent.resolve())
    built = inventory.build(target.env, observed, target.local, access)
    text = inventory.render(built)
    inventory.write(hosts_file, hosts_text)
    changed = inventory.write(path, text)
    if opts.json:
        return
    console.err.print(f"inventory {path} {'written' if changed else 'unchanged'}")
    if unpinned and not target.local:
        console.err.print(f"[yellow]warning:[/yellow] no pinned SSH host key for {', '.join(unpinned)} (made before "
                          "host keys were pinned, or by hand): deploys refuse them; see docs/RUNBOOK.md, "
                          "'Host keys'")


__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "Op", "Options", "run"]
