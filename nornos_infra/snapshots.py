"""``invoke snapshot``: Hetzner server snapshots of an environment, found again by their labels.

- take: one snapshot per server of the env (or of one pool), ``POST /servers/{id}/actions/create_image``,
  all labelled with the env, the pool, the server and the run's time (``nornos.io/snapshot``), so
  that the snapshots of one run belong together;
- list: the env's snapshots, newest first;
- prune: keep the newest ``keep`` runs of each pool, delete the older snapshots (a delete-protected
  image is left and named);
- restore: rebuild a server from one of its snapshots (the server's disk is replaced; asks first).

Snapshots cover the servers' own disks only. Hetzner Cloud volumes have no snapshots (the API has
no such endpoint): the PostgreSQL volume is protected by the backups instead (docs/RUNBOOK.md).
Snapshots are billed per GB and month; destroying an environment leaves them (they are what a
rebuild starts from).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nornos_infra.cloud.connection import Connection
from nornos_infra.cloud.model import ENV_LABEL, MANAGED_LABEL, MANAGED_VALUE, POOL_LABEL, env_selector
from nornos_infra.cloud.waiter import ActionWaiter
from nornos_infra.errors import UserError

RUN_LABEL = "nornos.io/snapshot"  # the run's UTC time, 20261202t011500z (label values allow no ':')
SERVER_LABEL = "nornos.io/server"
STAMP = "%Y%m%dt%H%M%Sz"


@dataclass(frozen=True)
class Snapshot:
    id: int
    server: str
    pool: str
    taken: datetime
    size_gb: float | None
    protected: bool

    def line(self) -> str:
        size = f"{self.size_gb:.1f} GB" if self.size_gb is not None else "size pending"
        lock = ", delete-protected" if self.protected else ""
        return f"{self.id:>10}  {self.taken:%Y-%m-%d %H:%M} UTC  {self.pool:<14} {self.server}  ({size}{lock})"


def _selector(env: str, pool: str | None) -> str:
    return env_selector(env) + (f",{POOL_LABEL}={pool}" if pool else "")


def _servers(conn: Connection, env: str, pool: str | None) -> list[dict[str, Any]]:
    servers = conn.list_all("/servers", "servers", {"label_selector": _selector(env, pool)})
    if not servers:
        raise UserError(f"{env} has no servers{f' in pool {pool}' if pool else ''}: nothing to snapshot")
    return sorted(servers, key=lambda s: str(s["name"]))


def take(conn: Connection, env: str, pool: str | None = None, now: datetime | None = None) -> list[Snapshot]:
    """A snapshot of every server (of ``pool``), all started before the first is waited for."""
    taken = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    actions = []
    for server in _servers(conn, env, pool):
        labels = {ENV_LABEL: env, MANAGED_LABEL: MANAGED_VALUE, RUN_LABEL: taken.strftime(STAMP),
                  SERVER_LABEL: str(server["name"]),
                  POOL_LABEL: str((server.get("labels") or {}).get(POOL_LABEL, "none"))}
        reply = conn.request("POST", f"/servers/{server['id']}/actions/create_image", f"snapshot {server['name']}",
                             json={"type": "snapshot", "labels": labels,
                                   "description": f"{server['name']} {taken.isoformat()}"})
        actions.append(reply["action"])
    ActionWaiter(conn, interval=conn.poll_interval).wait(actions)
    return [s for s in listing(conn, env, pool) if s.taken == taken]


def _parse(image: dict[str, Any]) -> Snapshot | None:
    labels: dict[str, str] = image.get("labels") or {}
    stamp = labels.get(RUN_LABEL, "")
    if not re.fullmatch(r"\d{8}t\d{6}z", stamp):
        return None  # a snapshot someone made by hand: not ours to prune
    size = image.get("image_size")
    return Snapshot(int(image["id"]), labels.get(SERVER_LABEL, "?"), labels.get(POOL_LABEL, "none"),
                    datetime.strptime(stamp, STAMP).replace(tzinfo=UTC), float(size) if size is not None else None,
                    bool((image.get("protection") or {}).get("delete")))


def listing(conn: Connection, env: str, pool: str | None = None) -> list[Snapshot]:
    """The env's snapshots (of ``pool``), newest first, then by server."""
    images = conn.list_all("/images", "images", {"type": "snapshot", "label_selector": _selector(env, pool)})
    found = [s for s in map(_parse, images) if s is not None]
    return sorted(found, key=lambda s: (-s.taken.timestamp(), s.pool, s.server))


def to_prune(snapshots: list[Snapshot], keep: int) -> list[Snapshot]:
    """Of each pool, the snapshots older than its ``keep`` newest runs."""
    if keep < 1:
        raise UserError(f"--keep {keep}: keep at least the newest run (1 or more)")
    runs: dict[str, list[datetime]] = defaultdict(list)
    for snapshot in snapshots:
        if snapshot.taken not in runs[snapshot.pool]:
            runs[snapshot.pool].append(snapshot.taken)
    kept = {pool: set(sorted(times, reverse=True)[:keep]) for pool, times in runs.items()}
    return [s for s in snapshots if s.taken not in kept[s.pool]]


def prune(conn: Connection, env: str, keep: int, pool: str | None = None,
          dry_run: bool = False) -> tuple[list[Snapshot], list[Snapshot]]:
    """Delete what ``to_prune`` names; returns (deleted or to delete, left because delete-protected)."""
    doomed = to_prune(listing(conn, env, pool), keep)
    protected = [s for s in doomed if s.protected]
    deleting = [s for s in doomed if not s.protected]
    if not dry_run:
        for snapshot in deleting:
            conn.request("DELETE", f"/images/{snapshot.id}", f"delete snapshot {snapshot.id} of {snapshot.server}")
    return deleting, protected


def restore(conn: Connection, env: str, server_name: str, image_id: int) -> Snapshot:
    """Rebuild ``server_name`` from snapshot ``image_id``, which must be one of this server's."""
    snapshot = next((s for s in listing(conn, env) if s.id == image_id), None)
    if snapshot is None:
        raise UserError(f"{image_id} is not a snapshot of {env}; `invoke snapshot.list --env {env}` lists them")
    if snapshot.server != server_name:
        raise UserError(f"snapshot {image_id} is of {snapshot.server}, not {server_name}")
    server = next((s for s in _servers(conn, env, None) if s["name"] == server_name), None)
    if server is None:
        raise UserError(f"{env} has no server {server_name}; provision it first, then restore")
    reply = conn.request("POST", f"/servers/{server['id']}/actions/rebuild", f"rebuild {server_name}",
                         json={"image": str(image_id)})
    ActionWaiter(conn, interval=conn.poll_interval).wait([reply["action"]])
    return snapshot


def connect(env: str) -> Connection:
    """The API as provision.py reaches it (token, endpoint, an overrides file's endpoint check)."""
    from nornos_infra import overrides, spec

    spec.check_name(env)
    conn = Connection.from_environment()
    extra = overrides.from_environment()
    if extra is not None:
        extra.check_endpoint(conn.endpoint)
    return conn


def main(argv: list[str] | None = None) -> int:
    """``python -m nornos_infra.snapshots take|list|prune|restore <env> ...`` (what invoke snapshot runs)."""
    import argparse

    from nornos_infra import console

    p = argparse.ArgumentParser(prog="python -m nornos_infra.snapshots", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("take", "snapshot every server (of --pool)"), ("list", "the env's snapshots, newest first"),
                       ("prune", "keep the newest --keep runs per pool"), ("restore", "rebuild a server from one")):
        one = sub.add_parser(name, help=text)
        one.add_argument("env")
        if name in ("take", "list", "prune"):
            one.add_argument("--pool")
        if name in ("take", "prune"):
            one.add_argument("--keep", type=int, default=0 if name == "take" else 7,
                             help="runs to keep per pool" + (" (0: prune nothing)" if name == "take" else ""))
        if name == "prune":
            one.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
        if name == "restore":
            one.add_argument("--server", required=True)
            one.add_argument("--image", type=int, required=True)
            one.add_argument("--yes", action="store_true", help="do not ask (the server's disk is replaced)")
    args = p.parse_args(argv)
    try:
        conn = connect(args.env)
        if args.command == "take":
            made = take(conn, args.env, args.pool)
            print(f"{len(made)} snapshot(s) of {args.env} taken {made[0].taken:%Y-%m-%d %H:%M:%S} UTC:" if made
                  else f"no snapshot of {args.env} was taken")
            for snapshot in made:
                print(snapshot.line())
        if args.command == "list":
            for snapshot in listing(conn, args.env, args.pool):
                print(snapshot.line())
        if args.command == "prune" or (args.command == "take" and args.keep):
            deleted, left = prune(conn, args.env, args.keep, args.pool, getattr(args, "dry_run", False))
            verb = "would delete" if getattr(args, "dry_run", False) else "deleted"
            print(f"kept the newest {args.keep} run(s) per pool; {verb} {len(deleted)} snapshot(s)")
            for snapshot in deleted:
                print(f"  - {snapshot.line()}")
            for snapshot in left:
                print(f"  ! delete-protected, left: {snapshot.line()}")
        if args.command == "restore":
            _confirm(f"rebuild {args.server} of {args.env} from snapshot {args.image}: everything on its disk since "
                     "then is lost", args.yes)
            restored = restore(conn, args.env, args.server, args.image)
            print(f"{args.server} rebuilt from snapshot {restored.id} ({restored.taken:%Y-%m-%d %H:%M} UTC)")
    except UserError as exc:
        console.fail(str(exc))
        return 1
    except Exception as exc:  # a bug or an API that answers nonsense: one line, the trace on request
        console.unexpected(exc)
        return 1
    return 0


def _confirm(question: str, yes: bool) -> None:
    from nornos_infra import console

    if yes:
        return
    if not console.interactive():
        raise UserError(f"{question}; nothing was changed: re-run with --yes")
    if console.out.input(f"{question}. Type 'yes' to go ahead: ").strip() != "yes":
        raise UserError("not confirmed; nothing was changed")


if __name__ == "__main__":
    import sys

    sys.exit(main())
