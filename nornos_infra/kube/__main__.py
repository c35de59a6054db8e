"""python -m nornos_infra.kube <env>: render, validate and apply an environment's manifests.

    python -m nornos_infra.kube dev --render-only            # print the rendered YAML (no Secrets)
    sops -d secrets/dev.sops.yaml | python -m nornos_infra.kube dev --secrets - \\
        --postgres-host 10.0.1.5 --redis-host 10.0.1.6 --dry-run   # diff like kubectl diff
    ... same without --dry-run                                # apply, prune, wait for rollouts
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from nornos_infra.errors import UserError
from nornos_infra.kube import validate
from nornos_infra.kube.apply import Timing
from nornos_infra.kube.environment import apply_environment
from nornos_infra.kube.generated import Endpoints
from nornos_infra.kube.render import ENVIRONMENTS, render


def _secret_values(source: str | None) -> dict[str, str]:
    if source is None:
        raise UserError("applying needs the decrypted secrets: pipe `sops -d secrets/<env>.sops.yaml` into "
                        "--secrets - (they are never read from a plain file on disk by default)")
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    data: Any = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise UserError("--secrets: expected a mapping of names to values")
    return {str(k): str(v) for k, v in data.items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nornos_infra.kube", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env", choices=ENVIRONMENTS)
    parser.add_argument("--dry-run", action="store_true", help="print a diff (secret values masked); change nothing")
    parser.add_argument("--render-only", action="store_true", help="render and validate; print the YAML")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--secrets", metavar="FILE|-", help="decrypted secret values as YAML ('-' for stdin)")
    parser.add_argument("--postgres-host", help="PostgreSQL private address (inventory)")
    parser.add_argument("--redis-host", help="Redis private address (inventory)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for rollouts (default 600)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        if args.render_only:
            objs = render(args.env)
            validate.check(objs)
            sys.stdout.write(yaml.safe_dump_all(objs, sort_keys=False))
            return 0
        if not args.postgres_host or not args.redis_host:
            raise UserError("--postgres-host and --redis-host are needed (the private IPs in inventories/<env>.py)")
        report = apply_environment(args.env, args.kubeconfig, _secret_values(args.secrets),
                                   Endpoints(postgres_host=args.postgres_host, redis_host=args.redis_host),
                                   dry_run=args.dry_run, timing=Timing(rollout_timeout=args.timeout))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        if report.diff:
            sys.stdout.write(report.diff)
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
