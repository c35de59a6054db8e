"""``invoke dr-drill --env E --yes``: lose the PostgreSQL server and its volume, on purpose, and
get the data back from Object Storage alone. Run it on localcloud or a scratch env, never on
production (refused).

1. write known rows (``patient_app.dr_drill_probe``) and take a checksum of every table of every
   app database;
2. back up: the nightly dumps (uploaded) and the WAL up to now (``pgbackrest check`` archives
   the current segment);
3. delete the PostgreSQL server and its volume through the API;
4. provision and deploy again (``provision.py E --yes``, ``pyinfra -y inventories/E.py
   deploys/all.py``): a new server with an empty volume;
5. restore from the bucket alone (pgBackRest, everything the archive holds);
6. compare the checksums, and print the recovery time (from the loss to the data back) and the
   recovery point (the writes lost).
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nornos_infra import console, host_command, inventory, paths
from nornos_infra.cloud.connection import Connection
from nornos_infra.cloud.waiter import ActionWaiter
from nornos_infra.errors import UserError
from nornos_infra.vocabulary import DB_APPS, sql_name

PROBE_ROWS = 10_000
REFUSED_ENVS = ("production",)
APPS = tuple(sql_name(app) for app in DB_APPS)  # one database per app (nornos_infra/roles/postgres.py)
SQL_TIMEOUT = 1800.0

# per app database, per table: its row count and an md5 of its rows in a stable order
CHECKSUMS = r"""set -e
cd /
for db in {apps}; do
  for table in $(runuser -u postgres -- psql -d "$db" -tAc "select quote_ident(schemaname) || '.' ||
      quote_ident(tablename) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')
      order by 1"); do
    printf '%s.%s ' "$db" "$table"
    runuser -u postgres -- psql -d "$db" -tAc "select count(*) || ' ' || md5(coalesce(string_agg(t::text, ','
        order by t::text), '')) from $table t"
  done
done"""


@dataclass
class Drill:
    env: str
    inventory_file: Path
    say: Callable[[str], None]
    timings: dict[str, float] = field(default_factory=dict)

    def postgres(self) -> inventory.Host:
        hosts = inventory.load(self.inventory_file).hosts("postgres")
        if not hosts:
            raise UserError(f"{self.inventory_file} has no postgres host: provision and deploy {self.env} first")
        return hosts[0]

    def on_postgres(self, command: str, what: str) -> str:
        outcome = host_command.run(self.postgres(), command, SQL_TIMEOUT)
        if outcome.status != 0:
            raise UserError(f"{what} failed on the PostgreSQL host (exit {outcome.status}): "
                            f"{outcome.output.splitlines()[-1] if outcome.output else 'no output'}")
        return outcome.output

    def checksums(self) -> dict[str, str]:
        text = self.on_postgres(CHECKSUMS.format(apps=" ".join(APPS)), "the checksums")
        return dict(line.split(" ", 1) for line in text.splitlines() if line.strip())

    def step(self, name: str, action: Callable[[], object]) -> None:
        started = time.monotonic()
        action()
        self.timings[name] = time.monotonic() - started


def _psql(sql: str) -> str:
    # from /: psql as postgres in root's home warns that it cannot change into it
    return f"cd / && runuser -u postgres -- psql -d patient_app -v ON_ERROR_STOP=1 -tAc \"{sql}\""


def write_known_rows(drill: Drill) -> str:
    """The probe rows; the time of the last write, as the database has it (UTC)."""
    drill.on_postgres(_psql(
        "set role patient_app; create table if not exists dr_drill_probe (id bigserial primary key, "
        "at timestamptz not null default clock_timestamp(), note text not null); "
        f"insert into dr_drill_probe (note) select md5(i::text) from generate_series(1, {PROBE_ROWS}) i"),
        "writing the known rows")
    return drill.on_postgres(_psql("select to_char(max(at) at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS.US') "
                                   "from dr_drill_probe"), "reading the last write")


def lose_the_server(conn: Connection, drill: Drill) -> None:
    """Delete the PostgreSQL server and every volume attached to it, as losing them would."""
    name = drill.postgres().name
    servers = conn.list_all("/servers", "servers", {"name": name})
    if not servers:
        raise UserError(f"{drill.env} has no server {name} in the API: provision it first")
    server = servers[0]
    volumes = [conn.request("GET", f"/volumes/{v}", "read volume")["volume"] for v in server.get("volumes", [])]
    protected = [r["name"] for r in (server, *volumes) if r.get("protection", {}).get("delete")]
    if protected:
        raise UserError(f"{', '.join(protected)} are delete-protected: the drill would have to lift that; run it on "
                        "localcloud or a scratch env whose file leaves protection off")
    waiter = ActionWaiter(conn, interval=conn.poll_interval)
    for volume in volumes:
        reply = conn.request("POST", f"/volumes/{volume['id']}/actions/detach", f"detach {volume['name']}")
        waiter.wait([reply["action"]])
    reply = conn.request("DELETE", f"/servers/{server['id']}", f"delete {name}")
    waiter.wait([reply["action"]])
    for volume in volumes:
        conn.request("DELETE", f"/volumes/{volume['id']}", f"delete {volume['name']}")
    drill.say(f"lost: server {name} and volume(s) {', '.join(v['name'] for v in volumes) or 'none'} deleted")


def _run(command: list[str], what: str) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        # pyinfra ends with its results table: the lines that name an error say more
        errors = [line.strip() for line in lines if "rror" in line or "failed" in line.lower()][-8:]
        raise UserError(f"{what} failed (exit {proc.returncode}): " + " | ".join(errors or lines[-5:]))


def rebuild(drill: Drill) -> None:
    project = paths.project_dir()
    drill.step("provision", lambda: _run([sys.executable, str(project / "provision.py"), drill.env, "--yes"],
                                         "provision.py"))
    pyinfra = str(Path(sys.executable).with_name("pyinfra"))
    drill.step("deploy", lambda: _run([pyinfra, "-y", str(drill.inventory_file),
                                       str(project / "deploys" / "all.py")], "the deploy"))
    drill.say(f"rebuilt: provision {drill.timings['provision']:.0f} s, deploy {drill.timings['deploy']:.0f} s")


def run(env: str, yes: bool, say: Callable[[str], None]) -> bool:
    """The drill; True when every checksum matches."""
    if env in REFUSED_ENVS:
        raise UserError(f"the drill deletes the PostgreSQL server of {env}: run it on localcloud or a scratch env")
    if not yes:
        raise UserError(f"the drill deletes the PostgreSQL server and volume of {env} and restores them from Object "
                        "Storage; nothing was changed: re-run with --yes")
    from nornos_infra.snapshots import connect

    conn = connect(env)
    drill = Drill(env, paths.inventory_file(env), say)
    last_write = write_known_rows(drill)
    before = drill.checksums()
    say(f"known rows: {PROBE_ROWS:,} written to patient_app.dr_drill_probe (last write {last_write} UTC); "
        f"checksums of {_count(len(before), 'table')} in {len(APPS)} databases")
    drill.on_postgres("/usr/local/sbin/nornos-pg-backup >/dev/null && "
                      "runuser -u postgres -- pgbackrest --stanza=nornos check", "the backup")
    say("backed up: the nightly dumps uploaded, the WAL archived up to now")
    lost_at = time.monotonic()
    lose_the_server(conn, drill)
    rebuild(drill)
    drill.step("restore", lambda: drill.on_postgres("/usr/local/sbin/nornos-pitr-restore --yes latest",
                                                    "the restore from Object Storage"))
    recovery_time = time.monotonic() - lost_at
    say(f"restored from Object Storage alone: {drill.timings['restore']:.0f} s")
    after = drill.checksums()
    restored_last = drill.on_postgres(_psql("select to_char(max(at) at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS.US') "
                                            "from dr_drill_probe"), "reading the newest restored write")
    different = sorted(t for t in before.keys() | after.keys() if before.get(t) != after.get(t))
    point = (_moment(last_write) - _moment(restored_last)).total_seconds()
    if different:
        say(f"checksums DIFFER in {len(different)} of {_count(len(before), 'table')}: {', '.join(different[:10])}")
    else:
        say(f"checksums: equal ({_count(len(before), 'table')})")
    say(f"recovery time (loss to data back): {recovery_time:.0f} s; recovery point: {max(point, 0):.0f} s of writes "
        f"lost (last write {last_write}, newest restored {restored_last})")
    return not different


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _moment(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S.%f")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nornos_infra.dr_drill", description=__doc__.split("\n")[0])
    parser.add_argument("env")
    parser.add_argument("--yes", action="store_true", help="really delete the PostgreSQL server and volume")
    args = parser.parse_args(argv)
    try:
        ok = run(args.env, args.yes, lambda line: print(f"dr-drill {args.env}: {line}", flush=True))
    except UserError as exc:
        console.fail(f"dr-drill: {exc}")
        return 1
    except Exception as exc:  # a bug or an API that answers nonsense: one line, the trace on request
        console.unexpected(exc)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
