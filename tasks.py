"""invoke tasks: the commands the platform team types (``invoke --list``).

Tasks for provisioning, deploys and manifests arrive with their issues; this file wraps the
library and localcloud, it holds no logic of its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import Collection, Context, task

ROOT = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # the venv's tools, whatever PATH says
STATE = Path(os.environ.get("LOCALCLOUD_STATE", ROOT / ".localcloud"))


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
    except RuntimeError as exc:
        sys.exit(f"localcloud.up: {exc}")
    print(f"localcloud is serving {running.endpoint} (pid {running.pid}, state {STATE})")
    print(f"  export HCLOUD_ENDPOINT={running.endpoint} HCLOUD_TOKEN={running.token}")


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


def _localcloud_env(c: Context, real_hosts: bool = False) -> dict[str, str]:
    """Start localcloud unless you point at a cloud of your own (with real machines when asked
    and possible here), and make the admin key; return the env vars."""
    from localcloud import control
    from localcloud.hosts.system import why_unsupported
    from nornos_infra.admin_key import ensure_keypair

    ensure_keypair(STATE / "ssh" / "id_ed25519")
    if _real_cloud():
        return {}
    nspawn = real_hosts and why_unsupported() is None
    running = control.up(STATE, extra=["--hosts", "nspawn"] if nspawn else [])
    return running.env


def _provision(c: Context, env: str, *flags: str, real_hosts: bool = False) -> None:
    extra = _localcloud_env(c, real_hosts)
    cmd = " ".join([sys.executable, str(ROOT / "provision.py"), env, *flags])
    result = c.run(cmd, env=extra, warn=True, pty=False)
    if result is not None and result.exited not in (0,):
        sys.exit(result.exited)


@task(help={"env": "environment (environments/<env>.yaml)", "yes": "do not ask before deleting or replacing"})
def provision(c: Context, env: str = "dev", yes: bool = False) -> None:
    """Create or update the env's Hetzner resources and write inventories/<env>.py."""
    _provision(c, env, *(["--yes"] if yes else []))


@task(help={"env": "environment"})
def plan(c: Context, env: str = "dev") -> None:
    """Show what provisioning would change and the monthly cost; change nothing."""
    _provision(c, env, "--dry-run")


@task(help={"env": "environment", "force": "lift delete protection first (production)"})
def destroy(c: Context, env: str = "dev", force: bool = False) -> None:
    """Delete everything labelled for the env (asks first)."""
    _provision(c, env, "--destroy", *(["--force"] if force else []))


LOCALCLOUD_SSH = ["--data", "ssh_strict_host_key_checking=off", "--data", "ssh_known_hosts_file=/dev/null"]


def _real_cloud() -> bool:
    """HCLOUD_TOKEN or HCLOUD_ENDPOINT set: the tasks use that cloud and never start localcloud."""
    return bool(os.environ.get("HCLOUD_TOKEN") or os.environ.get("HCLOUD_ENDPOINT"))


def _on_localcloud(env: str) -> bool:
    """Whether provision.py made the env's inventory on localcloud (it says so: ``offline``)."""
    import runpy

    path = ROOT / "inventories" / f"{env}.py"
    if not path.exists():
        return False
    module = runpy.run_path(str(path))
    groups = [v for v in module.values() if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], dict)]
    return any(bool(data.get("offline")) for _, data in groups)


def _local_secrets() -> dict[str, str]:
    """On localcloud the env's secrets and their age key live in .localcloud/, so that a demo
    never touches secrets/ or ~/.config; your own NORNOS_SECRETS_DIR / SOPS_AGE_KEY_FILE win."""
    return {"NORNOS_SECRETS_DIR": os.environ.get("NORNOS_SECRETS_DIR", str(STATE / "secrets")),
            "SOPS_AGE_KEY_FILE": os.environ.get("SOPS_AGE_KEY_FILE", str(STATE / "age.txt"))}


@task(help={"port": "localcloud port", "api_only": "no real machines: provision on the API alone (no root needed)"})
def demo(c: Context, port: int = 8700, api_only: bool = False) -> None:
    """The quick start: localcloud with real Debian machines, dev provisioned and deployed, then
    what runs where and what is reachable from where (API only without root)."""
    from hcloud import APIException

    from localcloud import control, tour
    from localcloud.hosts.system import why_unsupported
    from nornos_infra import secrets
    from nornos_infra.admin_key import ensure_keypair
    from nornos_infra.errors import UserError

    reason = "--api-only" if api_only else why_unsupported()
    key = STATE / "ssh" / "id_ed25519"
    try:
        ensure_keypair(key)
        running = control.up(STATE, port=port, extra=[] if reason else ["--hosts", "nspawn"])
        hosts = tour.side(running.endpoint, "health").get("hosts", "none")
    except (RuntimeError, APIException, OSError) as exc:
        sys.exit(f"demo: {exc}; see {STATE / 'localcloud.log'}")
    if reason is None and hosts != "nspawn":
        sys.exit("demo: a localcloud without real machines is running; stop it with `invoke localcloud.down`")
    machines = "servers are real Debian machines" if hosts == "nspawn" else f"API only ({reason})"
    print(f"localcloud is serving {running.endpoint} ({machines}; state in {STATE})\n")
    env = {**running.env, **_local_secrets()}
    provision_py = f"{sys.executable} {ROOT / 'provision.py'} dev"
    for step, flags in (("plan", "--dry-run"), ("apply", "--yes")):
        print(f"== {step}: python provision.py dev {flags}")
        result = c.run(f"{provision_py} {flags}", env=env, warn=True, pty=False)
        if result is None or result.exited != 0:
            sys.exit(f"demo: provision.py dev {flags} failed (exit {result.exited if result else '?'})")
    inventory = ROOT / "inventories" / "dev.py"
    print(f"\n== inventory: {inventory}")
    c.run(f"{sys.executable} -m nornos_infra.inventory_summary {inventory}", pty=False)
    if hosts == "nspawn":
        os.environ.update(_local_secrets())
        if not (secrets.secrets_dir() / "dev.sops.yaml").exists():
            try:
                print(f"\n== secrets: {secrets.init('dev')} (SOPS + age, key {secrets.age_key_file()})")
            except UserError as exc:
                sys.exit(f"demo: {exc}")
        print("\n== deploy: pyinfra inventories/dev.py deploys/all.py")
        result = c.run(" ".join([str(BIN / "pyinfra"), "-y", str(inventory), str(ROOT / "deploys" / "all.py"),
                                 "--user", "root", "--key", str(key), *LOCALCLOUD_SSH]), env=env, warn=True,
                       pty=False)
        if result is None or result.exited != 0:
            sys.exit("demo: the deploy failed (see above); run `invoke configure` to try again")
        print("\n== what runs where, what is reachable from where")
        c.run(f"{sys.executable} -m nornos_infra.reachability {inventory} --key {key} "
              "--ssh-option StrictHostKeyChecking=no --ssh-option UserKnownHostsFile=/dev/null", warn=True,
              pty=False)
    else:
        print(f"\nno real machines here ({reason}): provisioning only; as root on Linux the demo also deploys")
    print(f"\nlocalcloud keeps running; `export HCLOUD_ENDPOINT={running.endpoint} HCLOUD_TOKEN={running.token}` "
          "to use hcloud-python or provision.py against it, `invoke localcloud.down` to stop it "
          "(and its machines).")


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
    from nornos_infra.errors import UserError

    try:
        path = secrets.init(env)
    except UserError as exc:
        sys.exit(f"secrets.init: {exc}")
    print(f"{path} created, encrypted to {', '.join(secrets.recipients(path.parent))}")
    print(f"fill the provided values (hcloud_token, s3 keys, slack webhook) with `invoke secrets.edit --env {env}`")


@task(help={"env": "environment"})
def secrets_edit(c: Context, env: str = "dev") -> None:
    """Edit secrets/<env>.sops.yaml in $EDITOR through sops (decrypted only in memory/tmpfs)."""
    from nornos_infra import secrets

    c.run(f"{secrets.sops_binary()} {secrets.secrets_dir() / f'{env}.sops.yaml'}", pty=True,
          env={"SOPS_AGE_KEY_FILE": str(secrets.age_key_file())})


@task(help={"env": "environment"})
def secrets_names(c: Context, env: str = "dev") -> None:
    """List the secret names of an env (never their values)."""
    from nornos_infra import secrets
    from nornos_infra.errors import UserError

    try:
        loaded = secrets.load(env)
    except UserError as exc:
        sys.exit(f"secrets.names: {exc}")
    for name in sorted(loaded):
        print(f"{name}: {'set' if loaded[name] else 'EMPTY'}")


@task(help={"env": "environment", "key": "SSH private key (default: your agent/keys, or .localcloud's)"})
def kubeconfig(c: Context, env: str = "dev", key: str = "") -> None:
    """Fetch the cluster's kubeconfig (context nornos-<env>, mode 0600) from the first k3s server."""
    from nornos_infra import kubeconfig as kube_config
    from nornos_infra.errors import UserError

    key_file = Path(key) if key else (STATE / "ssh" / "id_ed25519" if (STATE / "ssh" / "id_ed25519").exists()
                                      else None)
    try:
        path = kube_config.fetch(env, ROOT / "inventories" / f"{env}.py", key_file)
    except UserError as exc:
        sys.exit(f"kubeconfig: {exc}")
    print(f"{path} written; use it with: export KUBECONFIG={path}")


@task(help={"env": "environment", "dry_run": "print a diff (secret values masked); change nothing"})
def manifests(c: Context, env: str = "dev", dry_run: bool = False) -> None:
    """Render, validate and server-side apply the Kubernetes manifests (prune, rollout waits)."""
    from nornos_infra.errors import UserError
    from nornos_infra.kube.from_inventory import apply_from_inventory

    try:
        report = apply_from_inventory(env, dry_run)
    except UserError as exc:
        sys.exit(f"manifests: {exc}")
    for line in report.lines():
        print(line)
    if not report.ok:
        sys.exit(1)


@task(help={"env": "environment"})
def deploy(c: Context, env: str = "dev") -> None:
    """provision -> configure (pyinfra deploys/all.py) -> manifests (its last step)."""
    _provision(c, env, "--yes", real_hosts=True)
    configure(c, env)


@task(help={"env": "environment", "key": "SSH private key (default: .localcloud's when it exists)"})
def check(c: Context, env: str = "dev", key: str = "") -> None:
    """What runs where and what is reachable from where, probed on the live hosts (exit 1 on surprises)."""
    key_file = Path(key) if key else STATE / "ssh" / "id_ed25519"
    options = " --ssh-option StrictHostKeyChecking=no --ssh-option UserKnownHostsFile=/dev/null" \
        if _on_localcloud(env) else ""
    key_flag = f" --key {key_file}" if key_file.exists() else ""
    result = c.run(f"{sys.executable} -m nornos_infra.reachability {ROOT / 'inventories' / f'{env}.py'}"
                   f"{key_flag}{options}", warn=True, pty=False)
    if result is None or result.exited != 0:
        sys.exit(1)


@task(help={"env": "environment", "dry": "only show what would change (--dry --diff)"})
def configure(c: Context, env: str = "dev", dry: bool = False) -> None:
    """Run every host role: pyinfra inventories/<env>.py deploys/all.py."""
    key = STATE / "ssh" / "id_ed25519"
    flags = ["--dry", "--diff"] if dry else ["-y"]
    key_flags = ["--key", str(key)] if key.exists() else []
    # localcloud's machines get new host keys whenever they are re-created, and its secrets live
    # in .localcloud/; real hosts keep pyinfra's strict checking and secrets/
    local = _on_localcloud(env)
    c.run(" ".join([str(BIN / "pyinfra"), *flags, str(ROOT / "inventories" / f"{env}.py"),
                    str(ROOT / "deploys" / "all.py"), "--user", "root", *key_flags,
                    *(LOCALCLOUD_SSH if local else [])]), env=_local_secrets() if local else {}, pty=False)


secrets_tasks = Collection("secrets")
secrets_tasks.add_task(secrets_init, "init")
secrets_tasks.add_task(secrets_edit, "edit")
secrets_tasks.add_task(secrets_names, "names")

localcloud_tasks = Collection("localcloud")
localcloud_tasks.add_task(lc_up, "up")
localcloud_tasks.add_task(lc_down, "down")
localcloud_tasks.add_task(lc_status, "status")
localcloud_tasks.add_task(lc_tour, "tour")
ns = Collection(demo, provision, plan, destroy, configure, deploy, check, manifests, kubeconfig, lint, test,
                localcloud_tasks, secrets_tasks)
