"""invoke tasks: the commands the platform team types (``invoke --list``).

Tasks for provisioning, deploys and manifests arrive with their issues; this file wraps the
library and localcloud, it holds no logic of its own.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from invoke import Collection, Context, task

if TYPE_CHECKING:
    from localcloud.control import Running

ROOT = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # the venv's tools, whatever PATH says
STATE = Path(os.environ.get("LOCALCLOUD_STATE", ROOT / ".localcloud"))
T = TypeVar("T")


@task(help={"port": "port to listen on (default 8700)", "profile": "fast or realistic",
            "time_scale": "multiply action durations", "faults": "fault document (JSON or @file)",
            "hosts": "none (API only, default) or nspawn (servers are real Debian machines; root)"})
def lc_up(c: Context, port: int = 8700, profile: str = "fast", time_scale: float = 1.0, faults: str = "",
          hosts: str = "none") -> None:
    """Start localcloud in the background (state in .localcloud/)."""
    from localcloud import control

    extra = ["--profile", profile, "--time-scale", str(time_scale), "--hosts", hosts] + (
        ["--faults", faults] if faults else [])
    try:
        running = control.up(STATE, port=port, extra=extra)
        env = _localcloud_vars(running)
    except (RuntimeError, OSError) as exc:
        sys.exit(f"localcloud.up: {exc}")
    print(f"localcloud is serving {running.endpoint} (pid {running.pid}, state {STATE})")
    print("  export " + " ".join(f"{k}={v}" for k, v in env.items()))


@task
def lc_down(c: Context) -> None:
    """Stop the background localcloud (its state stays in .localcloud/)."""
    from localcloud import control

    print("localcloud stopped" if control.down(STATE) else "localcloud was not running")


@task
def lc_status(c: Context) -> None:
    """Say whether localcloud runs, where, and how busy it has been."""
    from localcloud import control, tour

    running = control.find(STATE)
    if running is None or not control.healthy(running.endpoint):
        sys.exit("localcloud is not running; start it with `invoke localcloud.up`")
    stats = tour.side(running.endpoint, "stats")
    print(f"localcloud is serving {running.endpoint} (pid {running.pid}): {stats['requests']} requests served, "
          f"resources {', '.join(f'{k} {v}' for k, v in stats['resources'].items() if v)}")


OVERRIDES = STATE / "overrides.yaml"


def _localcloud_vars(running: Running) -> dict[str, str]:
    """Write localcloud's own values (its admin key and address, the demo's secrets in
    .localcloud/) to .localcloud/overrides.yaml; the env vars that point provision.py at them."""
    from localcloud import tour
    from nornos_infra import overrides
    from nornos_infra.admin_key import ensure_keypair

    key = STATE / "ssh" / "id_ed25519"
    ensure_keypair(key)
    address = str(tour.side(running.endpoint, "health").get("admin_address") or "198.51.100.1")
    storage = tour.side(running.endpoint, "objectstorage")
    overrides.write(OVERRIDES, overrides.for_localcloud(running.endpoint, address, key.resolve(),
                                                        (STATE / "secrets").resolve(), (STATE / "age.txt").resolve(),
                                                        storage))
    return {**running.env, overrides.ENV_VAR: str(OVERRIDES.resolve())}


def _localcloud_secrets(env: str, endpoint: str) -> Path:
    """The env's secrets for localcloud (in .localcloud/secrets, made once), holding localcloud's
    Object Storage key: a new localcloud state has a new key, so it is set on every run."""
    from localcloud import tour
    from nornos_infra import secrets

    directory = STATE / "secrets"
    if not secrets.path_for(env, directory).exists():
        secrets.init(env, directory=directory, identity=STATE / "age.txt")
        print(f"\n== secrets: {secrets.path_for(env, directory)} (SOPS + age, key {STATE / 'age.txt'})")
    storage = tour.side(endpoint, "objectstorage")
    os.environ["SOPS_AGE_KEY_FILE"] = str((STATE / "age.txt").resolve())
    secrets.fill(env, directory)  # secrets made by an older version get what this one generates
    secrets.update(env, {"object_storage_access_key": storage["access_key"],
                         "object_storage_secret_key": storage["secret_key"]}, directory)
    return secrets.path_for(env, directory)


def _localcloud_env(c: Context, real_hosts: bool = False) -> dict[str, str]:
    """Start localcloud unless you point at a cloud of your own (with real machines when asked
    and possible here); return the env vars for provision.py."""
    from localcloud import control
    from localcloud.hosts.system import why_unsupported

    if _real_cloud():
        return {}
    nspawn = real_hosts and why_unsupported() is None
    return _localcloud_vars(control.up(STATE, extra=["--hosts", "nspawn"] if nspawn else []))


def _provision(c: Context, env: str, *flags: str, real_hosts: bool = False) -> None:
    _inventory(env)  # a name, never a path or shell words: checked before localcloud starts or a shell runs
    extra = _localcloud_env(c, real_hosts)
    cmd = " ".join([sys.executable, str(ROOT / "provision.py"), env, *flags])
    # on a terminal provision.py gets one (a pty), so it can ask before deleting or replacing; elsewhere
    # it sees no terminal and refuses such a change without --yes, in one line
    result = c.run(cmd, env=extra, warn=True, pty=sys.stdin.isatty())
    if result is not None and result.exited not in (0,):
        sys.exit(result.exited)


@task(help={"env": "environment (environments/<env>.yaml)", "yes": "do not ask before deleting or replacing"})
def provision(c: Context, env: str = "dev", yes: bool = False) -> None:
    """Create or update the env's Hetzner resources and write inventories/<env>.py."""
    _provision(c, env, *(["--yes"] if yes else []))


@task(help={"env": "environment", "json": "all three layers as one JSON document (for automation)"})
def plan(c: Context, env: str = "dev", json: bool = False) -> None:
    """What a deploy would change, changing nothing: cloud (with the monthly cost), hosts
    (pyinfra --dry --diff, secrets masked), manifests (server-side dry run). Exit 2: changes pending."""
    import json as json_text

    from nornos_infra import env_plan

    _inventory(env)
    extra = _localcloud_env(c)
    _use_inventory_secrets(env)
    result = env_plan.plan(env, json, extra)
    print(json_text.dumps(result.as_dict(), indent=2) if json else result.text(), end="" if not json else "\n")
    sys.exit(result.exit_status)


@task(help={"env": "environment", "yes": "do not ask (needed where there is no terminal, e.g. CI)",
            "force": "lift delete protection first (production)"})
def destroy(c: Context, env: str = "dev", yes: bool = False, force: bool = False) -> None:
    """Delete everything labelled for the env: asks on a terminal, refuses without --yes elsewhere."""
    _provision(c, env, "--destroy", *(["--yes"] if yes else []), *(["--force"] if force else []))


def _real_cloud() -> bool:
    """HCLOUD_TOKEN or HCLOUD_ENDPOINT set: the tasks use that cloud and never start localcloud."""
    return bool(os.environ.get("HCLOUD_TOKEN") or os.environ.get("HCLOUD_ENDPOINT"))


def _inventory(env: str) -> Path:
    """The env's inventory; an env that is not a name (``../x``, ``nodir/x``) ends the task with
    one line, before any file is read, run or written."""
    from nornos_infra.errors import UserError
    from nornos_infra.spec import check_name

    try:
        check_name(env)
    except UserError as exc:
        sys.exit(f"--env: {exc}")
    from nornos_infra import paths

    return paths.inventory_file(env)


def _use_inventory_secrets(env: str) -> None:
    """Outside pyinfra, find the env's secrets where its inventory says (the demo's are in
    .localcloud/); inside a deploy nornos_infra/secrets.py reads the same host data itself."""
    from nornos_infra import inventory

    if not _inventory(env).exists():
        return
    common = inventory.load(_inventory(env)).shared
    for key, var in (("sops_dir", "NORNOS_SECRETS_DIR"), ("sops_age_key_file", "SOPS_AGE_KEY_FILE")):
        if common.get(key):
            os.environ[var] = str(common[key])


def _or_exit(task_name: str, action: Callable[[], T]) -> T:
    """Run a library call; a mistake the user can fix (UserError) ends the task with its one line."""
    from nornos_infra.errors import UserError

    try:
        return action()
    except UserError as exc:
        sys.exit(f"{task_name}: {exc}")


@task(help={"port": "localcloud port", "api_only": "no real machines: provision on the API alone (no root needed)"})
def demo(c: Context, port: int = 8700, api_only: bool = False) -> None:
    """The quick start: localcloud with real Debian machines, dev provisioned and deployed, then
    what runs where and what is reachable from where (API only without root)."""
    from hcloud import APIException

    from localcloud import control, tour
    from localcloud.hosts.system import why_unsupported
    from nornos_infra.errors import UserError

    reason = "--api-only" if api_only else why_unsupported()
    try:
        running = control.up(STATE, port=port, extra=[] if reason else ["--hosts", "nspawn"])
        hosts = tour.side(running.endpoint, "health").get("hosts", "none")
        env = _localcloud_vars(running)
    except (RuntimeError, APIException, OSError) as exc:
        sys.exit(f"demo: {exc}; see {STATE / 'localcloud.log'}")
    if reason is None and hosts != "nspawn":
        sys.exit("demo: a localcloud without real machines is running; stop it with `invoke localcloud.down`")
    machines = "servers are real Debian machines" if hosts == "nspawn" else f"API only ({reason})"
    print(f"localcloud is serving {running.endpoint} ({machines}; state in {STATE})")
    print(f"localcloud's own admin key and address: {OVERRIDES} (NORNOS_OVERRIDES)\n")
    provision_py = f"{sys.executable} {ROOT / 'provision.py'} dev"
    for step, flags in (("plan", "--dry-run"), ("apply", "--yes")):
        print(f"== {step}: python provision.py dev {flags}")
        result = c.run(f"{provision_py} {flags}", env=env, warn=True, pty=False)
        if result is None or result.exited != 0:
            sys.exit(f"demo: provision.py dev {flags} failed (exit {result.exited if result else '?'})")
    inventory = _inventory("dev")
    print(f"\n== inventory: {inventory}")
    c.run(f"{sys.executable} -m nornos_infra.inventory_summary {inventory}", pty=False)
    if hosts == "nspawn":
        try:
            _localcloud_secrets("dev", running.endpoint)
        except UserError as exc:
            sys.exit(f"demo: {exc}")
        print("\n== backup bucket: python -m nornos_infra.backup_bucket dev (localcloud's Object Storage)")
        result = c.run(f"{sys.executable} -m nornos_infra.backup_bucket dev", env=env, warn=True, pty=False)
        if result is None or result.exited != 0:
            sys.exit("demo: the backup bucket could not be made (see above)")
        # the bare commands: user, key, known host keys and secrets all come from the inventory
        print("\n== deploy: pyinfra -y inventories/dev.py deploys/all.py")
        result = c.run(f"{BIN / 'pyinfra'} -y {inventory} {ROOT / 'deploys' / 'all.py'}", warn=True, pty=False)
        if result is None or result.exited != 0:
            sys.exit("demo: the deploy failed (see above); run `invoke configure` to try again")
        print("\n== what runs where, what is reachable from where")
        c.run(f"{sys.executable} -m nornos_infra.reachability {inventory}", warn=True, pty=False)
    else:
        print(f"\nno real machines here ({reason}): provisioning only; as root on Linux the demo also deploys")
    print("\nlocalcloud keeps running; `export " + " ".join(f"{k}={v}" for k, v in env.items()) + "` to use "
          "hcloud-python or provision.py against it, `invoke localcloud.down` to stop it (and its machines).")


@task
def lc_tour(c: Context) -> None:
    """A short tour of localcloud with the plain hcloud-python client."""
    from localcloud import control, tour

    running = control.up(STATE)
    tour.run(running.endpoint, running.token)


@task
def lint(c: Context) -> None:
    """ruff, then mypy (strict on localcloud and the library)."""
    c.run(f"{BIN}/ruff check localcloud nornos_infra tests benchmarks tasks.py provision.py", pty=False)
    c.run(f"{BIN}/mypy localcloud nornos_infra", pty=False)


@task(help={"args": "extra pytest arguments"})
def test(c: Context, args: str = "") -> None:
    """The test suite (same as scripts/test.sh)."""
    c.run(f"{ROOT / 'scripts' / 'test.sh'} {args}", pty=False)


@task(help={"env": "environment"})
def secrets_init(c: Context, env: str = "dev") -> None:
    """Create secrets/<env>.sops.yaml with strong random values (SOPS + age); never overwrites."""
    from nornos_infra import secrets

    _use_inventory_secrets(env)
    path = _or_exit("secrets.init", lambda: secrets.init(env))
    print(f"{path} created, encrypted to {', '.join(secrets.recipients(path.parent))}")
    print(f"fill the provided values (hcloud_token, s3 keys, slack webhook) with `invoke secrets.edit --env {env}`")


@task(help={"env": "environment"})
def secrets_fill(c: Context, env: str = "dev") -> None:
    """Add the generated secrets a newer version introduced (e.g. pgbackrest_cipher_pass); never changes a value."""
    from nornos_infra import secrets

    _use_inventory_secrets(env)
    added = _or_exit("secrets.fill", lambda: secrets.fill(env))
    print(f"added {', '.join(added)}" if added else "nothing to add: every generated secret is there")


@task(help={"env": "environment"})
def secrets_edit(c: Context, env: str = "dev") -> None:
    """Edit secrets/<env>.sops.yaml in $EDITOR through sops (decrypted only in memory/tmpfs)."""
    from nornos_infra import secrets

    _use_inventory_secrets(env)
    c.run(f"{secrets.sops_binary()} {secrets.path_for(env)}", pty=True,
          env={"SOPS_AGE_KEY_FILE": str(secrets.age_key_file())})


@task(help={"env": "environment"})
def secrets_names(c: Context, env: str = "dev") -> None:
    """List the secret names of an env (never their values)."""
    from nornos_infra import secrets

    _use_inventory_secrets(env)
    loaded = _or_exit("secrets.names", lambda: secrets.load(env))
    for name in sorted(loaded):
        print(f"{name}: {'set' if loaded[name] else 'EMPTY'}")


@task(help={"env": "environment", "key": "SSH private key (default: the inventory's ssh_key, else your agent/keys)"})
def kubeconfig(c: Context, env: str = "dev", key: str = "") -> None:
    """Fetch the cluster's kubeconfig (context nornos-<env>, mode 0600) from the first k3s server."""
    from nornos_infra import kubeconfig as kube_config

    path = _or_exit("kubeconfig", lambda: kube_config.fetch(env, _inventory(env), Path(key) if key else None))
    print(f"{path} written; use it with: export KUBECONFIG={path}")


@task(help={"env": "environment", "dry_run": "print a diff (secret values masked); change nothing"})
def manifests(c: Context, env: str = "dev", dry_run: bool = False) -> None:
    """Render, validate and server-side apply the Kubernetes manifests (prune, rollout waits)."""
    from nornos_infra.kube.from_inventory import apply_from_inventory

    _use_inventory_secrets(env)
    report = _or_exit("manifests", lambda: apply_from_inventory(env, dry_run))
    for line in report.lines():
        print(line)
    if not report.ok:
        sys.exit(1)


@task(help={"env": "environment", "dry_run": "say what would change; change nothing (exit 2 when pending)"})
def bucket(c: Context, env: str = "dev", dry_run: bool = False) -> None:
    """The env's offsite backup bucket on Object Storage: made with object lock, versioning and expiry."""
    _inventory(env)
    extra = _localcloud_env(c)
    if extra:  # localcloud: its Object Storage key goes into the env's secrets there
        _or_exit("bucket", lambda: _localcloud_secrets(env, extra["HCLOUD_ENDPOINT"]))
    flags = " --dry-run" if dry_run else ""
    result = c.run(f"{sys.executable} -m nornos_infra.backup_bucket {env}{flags}", env=extra, warn=True, pty=False)
    if result is None or result.exited != 0:
        sys.exit(result.exited if result is not None else 1)


@task(help={"env": "environment"})
def deploy(c: Context, env: str = "dev") -> None:
    """provision -> backup bucket -> configure (pyinfra deploys/all.py) -> manifests (its last step)."""
    _provision(c, env, "--yes", real_hosts=True)
    bucket(c, env)
    configure(c, env)


@task(help={"env": "environment", "key": "SSH private key (default: the inventory's ssh_key)"})
def check(c: Context, env: str = "dev", key: str = "") -> None:
    """What runs where and what is reachable from where, probed on the live hosts (exit 1 on surprises)."""
    key_flag = f" --key {key}" if key else ""
    result = c.run(f"{sys.executable} -m nornos_infra.reachability {_inventory(env)}{key_flag}", warn=True,
                   pty=False)
    if result is None or result.exited != 0:
        sys.exit(1)


@task(help={"env": "environment", "dry": "only show what would change (--dry --diff)"})
def configure(c: Context, env: str = "dev", dry: bool = False) -> None:
    """Run every host role: the bare pyinfra -y inventories/<env>.py deploys/all.py.

    Nothing is added: the inventory names the user, key, pinned host keys and the secrets."""
    if not _inventory(env).exists():
        sys.exit(f"configure: {_inventory(env)} does not exist; run `invoke provision --env {env}` first")
    flags = "--dry --diff" if dry else "-y"
    c.run(f"{BIN / 'pyinfra'} {flags} {_inventory(env)} {ROOT / 'deploys' / 'all.py'}", pty=False)


@task(help={"env": "environment"})
def cost(c: Context, env: str = "dev") -> None:
    """Every billed resource with its type and monthly price (live GET /pricing), the total and the seed's figure."""
    _inventory(env)
    result = c.run(f"{sys.executable} -m nornos_infra.cost_table {env}", env=_localcloud_env(c), warn=True, pty=False)
    if result is None or result.exited != 0:
        sys.exit(1)


@task(help={"env": "environment", "only": "postgres or redis (default: both)"})
def backup(c: Context, env: str = "dev", only: str = "") -> None:
    """Run the nightly backups now, on the hosts (the scripts their cron jobs run); exit 1 if one failed."""
    from nornos_infra import backup_now

    results = _or_exit("backup", lambda: backup_now.run(_inventory(env), only or None))
    for result in results:
        print("\n".join(result.lines()))
    if any(r.status != 0 for r in results):
        sys.exit(1)


@task(help={"env": "environment", "to": "the whole cluster back to this time: \"2026-12-01 10:15\" (UTC)",
            "db": "one database, from a nightly dump", "from_": "with --db: latest (default), offsite or a "
            "dump file on the host", "yes": "replace the data (without it nothing is touched)"})
def restore(c: Context, env: str = "dev", to: str = "", db: str = "", from_: str = "latest",
            yes: bool = False) -> None:
    """Bring PostgreSQL data back: the cluster to a moment (--to), or one database from a dump (--db)."""
    from nornos_infra import restore as restoring

    if bool(to) == bool(db):
        sys.exit("restore: give --to TIME (the whole cluster) or --db NAME (one database), not both")
    _use_inventory_secrets(env)
    inventory = _inventory(env)
    result = _or_exit("restore", lambda: restoring.to_time(inventory, to, yes) if to else
                      restoring.database(inventory, env, db, from_, yes))
    print("\n".join(result.lines()))
    if result.status != 0:
        sys.exit(1)


@task(help={"env": "environment (never production)", "yes": "really delete its PostgreSQL server and volume"})
def dr_drill(c: Context, env: str = "dev", yes: bool = False) -> None:
    """Disaster-recovery drill: lose the PostgreSQL server and volume, rebuild, restore from Object Storage alone."""
    _inventory(env)
    extra = _localcloud_env(c, real_hosts=True)
    result = c.run(f"{sys.executable} -m nornos_infra.dr_drill {env}{' --yes' if yes else ''}",
                   env=extra, warn=True, pty=False)
    if result is None or result.exited != 0:
        sys.exit(1)


@task(help={"env": "environment", "k3s": "the target release: the env file's k3s.version (default)",
            "dry_run": "show the order and what each node needs; change nothing (exit 2 when nodes would change)",
            "binary": "a local k3s binary of the target release, for hosts without internet access"})
def upgrade(c: Context, env: str = "dev", k3s: str = "", dry_run: bool = False, binary: str = "") -> None:
    """Upgrade k3s one node at a time, servers first: cordon, drain, pinned binary, restart, Ready, uncordon."""
    _inventory(env)
    args = [sys.executable, "-m", "nornos_infra.upgrade", env, *(["--k3s", k3s] if k3s else []),
            *(["--dry-run"] if dry_run else []), *(["--binary", binary] if binary else [])]
    result = c.run(" ".join(shlex.quote(a) for a in args), warn=True, pty=False)
    if result is None or result.exited != 0:
        sys.exit(result.exited if result is not None else 1)


def _snapshots(c: Context, *args: str) -> None:
    _inventory(args[1])  # the env: a name, checked before anything runs
    result = c.run(" ".join([sys.executable, "-m", "nornos_infra.snapshots", *args]), env=_localcloud_env(c),
                   warn=True, pty=sys.stdin.isatty())
    if result is None or result.exited != 0:
        sys.exit(1)


@task(help={"env": "environment", "pool": "only this pool's servers", "keep": "then keep the newest N runs per pool"})
def snapshot_take(c: Context, env: str = "dev", pool: str = "", keep: int = 0) -> None:
    """Snapshot every server of the env (or one pool), labelled with env, pool, server and time."""
    _snapshots(c, "take", env, *(["--pool", pool] if pool else []), *(["--keep", str(keep)] if keep else []))


@task(help={"env": "environment", "pool": "only this pool"})
def snapshot_list(c: Context, env: str = "dev", pool: str = "") -> None:
    """The env's snapshots, newest first."""
    _snapshots(c, "list", env, *(["--pool", pool] if pool else []))


@task(help={"env": "environment", "keep": "runs to keep per pool (default 7)", "pool": "only this pool",
            "dry_run": "only say what would be deleted"})
def snapshot_prune(c: Context, env: str = "dev", keep: int = 7, pool: str = "", dry_run: bool = False) -> None:
    """Delete the snapshots older than the newest --keep runs of each pool."""
    _snapshots(c, "prune", env, "--keep", str(keep), *(["--pool", pool] if pool else []),
               *(["--dry-run"] if dry_run else []))


@task(help={"env": "environment", "server": "the server to rebuild", "image": "the snapshot's id (snapshot.list)",
            "yes": "do not ask (needed without a terminal)"})
def snapshot_restore(c: Context, env: str = "dev", server: str = "", image: int = 0, yes: bool = False) -> None:
    """Rebuild a server from one of its snapshots (its disk is replaced: asks first)."""
    _snapshots(c, "restore", env, "--server", server, "--image", str(image), *(["--yes"] if yes else []))


@task(help={"env": "environment", "release": "the application's release tag (default: its latest release)"})
def images_pin(c: Context, env: str = "dev", release: str = "") -> None:
    """Pin manifests/overlays/<env> to the digests of the application's release (NORNOS_REPO_TOKEN, NORNOS_APP_REPO)."""
    from nornos_infra.ci import images

    _inventory(env)
    pins = _or_exit("images.pin", lambda: images.pin(env, release or None))
    for pin in pins:
        print(f"{pin.image}:{pin.tag}@{pin.digest}")
    print(f"{images.overlay_file(env)}: {len(pins)} image(s) pinned to release {pins[0].tag}")


@task(help={"env": "environment"})
def ci_credentials(c: Context, env: str = "dev") -> None:
    """Write what the job's secrets hold (SOPS_AGE_KEY, SSH_PRIVATE_KEY, KUBECONFIG_B64) to files, mode 0600."""
    from nornos_infra.ci import credentials

    _inventory(env)
    written = _or_exit("ci.credentials", lambda: credentials.write_all(env))
    for item in written:
        print(item.line())


@task(help={"env": "environment", "out": "directory for plan-<env>.json and plan-<env>.md (default plans/)"})
def ci_plan(c: Context, env: str = "dev", out: str = "plans") -> None:
    """invoke plan --json for a pull request: kept in <out>/ and in the job summary; exit 1 if a layer failed."""
    from nornos_infra import env_plan
    from nornos_infra.ci import report

    _inventory(env)
    extra = _localcloud_env(c)
    _use_inventory_secrets(env)
    result = env_plan.plan(env, True, extra)
    saved, text = report.save(result.as_dict(), Path(out))
    summary = report.add_to_job_summary(text)
    print(f"{saved} written" + (f"; added to {summary}" if summary else ""))
    print(result.summary())
    if result.exit_status == env_plan.EXIT_FAILED:
        sys.exit(1)


@task(help={"plans": "directory holding the plan-<env>.json files of ci.plan"})
def ci_comment(c: Context, plans: str = "plans") -> None:
    """Put every env's plan into the pull request's one plan comment (created, then updated in place)."""
    from nornos_infra.ci import report

    body = _or_exit("ci.comment", lambda: report.comment_body(report.load_all(Path(plans)),
                                                              os.environ.get("GITHUB_SHA", "")))
    url = _or_exit("ci.comment", lambda: report.upsert_comment(body))
    print(f"plan comment: {url}")


@task(help={"env": "environment", "status": "the deploy's outcome: success, failure or cancelled (job.status)"})
def ci_notify(c: Context, env: str = "dev", status: str = "success") -> None:
    """Tell Slack how the env's deploy went (SLACK_WEBHOOK_URL; without it, says so and sends nothing)."""
    from nornos_infra.ci import slack

    _inventory(env)
    print(_or_exit("ci.notify", lambda: slack.notify(env, status)))


secrets_tasks = Collection("secrets")
secrets_tasks.add_task(secrets_init, "init")
secrets_tasks.add_task(secrets_fill, "fill")
secrets_tasks.add_task(secrets_edit, "edit")
secrets_tasks.add_task(secrets_names, "names")

localcloud_tasks = Collection("localcloud")
localcloud_tasks.add_task(lc_up, "up")
localcloud_tasks.add_task(lc_down, "down")
localcloud_tasks.add_task(lc_status, "status")
localcloud_tasks.add_task(lc_tour, "tour")
ci_tasks = Collection("ci")
ci_tasks.add_task(ci_credentials, "credentials")
ci_tasks.add_task(ci_plan, "plan")
ci_tasks.add_task(ci_comment, "comment")
ci_tasks.add_task(ci_notify, "notify")
snapshot_tasks = Collection("snapshot")
snapshot_tasks.add_task(snapshot_take, "take", default=True)
snapshot_tasks.add_task(snapshot_list, "list")
snapshot_tasks.add_task(snapshot_prune, "prune")
snapshot_tasks.add_task(snapshot_restore, "restore")
images_tasks = Collection("images")
images_tasks.add_task(images_pin, "pin")
ns = Collection(demo, provision, plan, destroy, bucket, configure, deploy, check, manifests, kubeconfig, cost, backup,
                restore, dr_drill, upgrade,
                lint, test,
                localcloud_tasks, secrets_tasks, ci_tasks, images_tasks, snapshot_tasks)
