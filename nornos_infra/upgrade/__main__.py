"""``python -m nornos_infra.upgrade ENV [--k3s VERSION] [--dry-run] [--binary FILE]`` (``invoke upgrade``).

The target is the env file's ``k3s.version``: raise it there (a reviewed change), run provision.py
(the inventory carries it to later deploys, which then keep it), then upgrade. Exit status: 0 done
or nothing to do, 1 refused or stopped, 2 ``--dry-run`` with nodes to upgrade.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nornos_infra import inventory, k3s_releases, kubeconfig, paths
from nornos_infra.errors import UserError
from nornos_infra.host_command import Outcome
from nornos_infra.spec import loading
from nornos_infra.upgrade import swap as swapping
from nornos_infra.upgrade.drain import DrainTiming
from nornos_infra.upgrade.nodes import NodeApi
from nornos_infra.upgrade.rolling import Rolling, Stopped, Timing, describe, plan


def target_version(env: str, loaded: inventory.Inventory, asked: str | None) -> str:
    """The env file's k3s.version; ``--k3s`` only confirms it (the env file is what deploys keep)."""
    env_file = paths.environments_dir() / f"{env}.yaml"
    wanted = loading.load(env_file).k3s.version
    if asked and asked != wanted:
        raise UserError(f"--k3s {asked}, but {env_file} has k3s.version {wanted}: set k3s.version: {asked} there "
                        f"and run `python provision.py {env}` first, so that later deploys keep {asked}")
    in_inventory = loaded.shared.get("k3s_version")
    if in_inventory != wanted:
        raise UserError(f"{loaded.source} has k3s_version {in_inventory}, the env file {wanted}: "
                        f"run `python provision.py {env}` first")
    return wanted


def binary_file(loaded: inventory.Inventory, given: str | None) -> Path | None:
    """A local binary to stream to the hosts, or None: they download it themselves."""
    path = given or loaded.shared.get("k3s_binary_path")
    if path:
        local = Path(str(path)).expanduser()
        if not local.is_file():
            raise UserError(f"{local} is not a file (the k3s binary to install)")
        return local
    if loaded.shared.get("internet_access") is False:
        raise UserError("the hosts have no internet access: pass --binary FILE, the k3s binary of the target "
                        "release (its pinned checksum is checked)")
    return None


def connect(config: Path) -> NodeApi:
    from kubernetes import config as kube_config

    if not config.exists():
        raise UserError(f"{config} does not exist; fetch it with `invoke kubeconfig --env ENV` or pass --kubeconfig")
    new_client: Any = kube_config.new_client_from_config  # the client's loaders are untyped
    try:
        return NodeApi(new_client(config_file=str(config)))
    except (kube_config.ConfigException, OSError) as exc:
        raise UserError(f"cannot load kubeconfig {config}: {exc}") from None


def upgrade(api: NodeApi, loaded: inventory.Inventory, target: str, sha256: str, binary: Path | None,
            dry_run: bool, say: Callable[[str], None] = print, timing: Timing | None = None,
            swap: Callable[[inventory.Host, str, str, Path | None], Outcome] = swapping.swap) -> int:
    """Plan, print the plan, and (unless ``dry_run``) roll it out; the exit status."""
    try:
        steps = plan(api, loaded, target)
    except UserError:
        raise
    except Exception as exc:  # the API server not answering: one line
        raise UserError(f"cannot read the cluster's nodes: {type(exc).__name__}: {exc}") from None
    pending = [s for s in steps if s.action != "skip"]
    say(f"k3s {target} (sha256 {sha256[:12]}...), one node at a time, servers first:")
    for line in describe(steps, target, api if dry_run else None):
        say(line)
    if dry_run:
        say(f"dry run: nothing was changed; {len(pending)} node(s) to upgrade" if pending else
            "dry run: nothing to do")
        return 2 if pending else 0
    if not pending:
        say(f"nothing to do: every node runs {target}")
        return 0
    done = Rolling(api, target, sha256, binary, say=say, timing=timing or Timing(), swap=swap).run(steps)
    say(f"upgrade done: {len(done)} node(s) now run {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="invoke upgrade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env")
    parser.add_argument("--k3s", help="the target release; must be the env file's k3s.version")
    parser.add_argument("--dry-run", action="store_true",
                        help="show the order and what each node needs; change nothing")
    parser.add_argument("--binary", help="a local k3s binary of the target release, for hosts without internet access")
    parser.add_argument("--kubeconfig", help="default: .kube/nornos-ENV.yaml (invoke kubeconfig)")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="seconds per node (default 600)")
    parser.add_argument("--ready-timeout", type=float, default=300.0, help="seconds per node (default 300)")
    args = parser.parse_args(argv)
    try:
        loaded = inventory.load(paths.inventory_file(args.env))
        target = target_version(args.env, loaded, args.k3s)
        sha256 = k3s_releases.pinned_sha256(target)
        binary = binary_file(loaded, args.binary)
        api = connect(Path(args.kubeconfig) if args.kubeconfig else kubeconfig.local_path(args.env))
        timing = Timing(drain=DrainTiming(timeout=args.drain_timeout), ready_timeout=args.ready_timeout)
        return upgrade(api, loaded, target, sha256, binary, args.dry_run, timing=timing)
    except Stopped as exc:
        print(exc, file=sys.stderr)
        return 1
    except UserError as exc:
        print(f"upgrade: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
