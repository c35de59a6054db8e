"""The command line of provision.py (``python provision.py --help`` is the manual)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from nornos_infra import paths
from nornos_infra.provisioning import Options, run

EPILOG = """\
environment:
  HCLOUD_TOKEN       API token (else the hcloud CLI's active context)
  HCLOUD_ENDPOINT    API endpoint (default https://api.hetzner.cloud/v1; localcloud: http://127.0.0.1:8700/v1)
  SSH_PUBLIC_KEY     the admin public key when the env file names it (public_key_env); else its
                     public_key_file, default ~/.ssh/id_ed25519.pub
  NORNOS_OVERRIDES   a YAML file of env-file keys merged over the env file (localcloud writes
                     .localcloud/overrides.yaml: its admin key and address)
  NORNOS_DEBUG       set: an unexpected error prints its traceback

checks before the first write: the env name and file, admin_cidrs (together at most a /16 of
IPv4 and a /48 of IPv6 unless --allow-wide-admin-cidrs; never the whole internet), token and
endpoint, the SSH keys, the live catalogue, and the token's write permission. A dead or wrong
endpoint fails within 30 s; requests time out after 5 s (connect) and 15 s (reply).

output:
  inventories/<env>.py           the pyinfra inventory: pyinfra -y inventories/<env>.py deploys/all.py
  inventories/<env>.known_hosts  the servers' SSH host keys, pinned when they were created

exit status:
  0 done (or nothing to do); 1 error, nothing more changed; 2 changes pending (--detailed-exitcode, --check)

examples:
  python provision.py dev --dry-run          show the plan and its monthly cost, change nothing
  python provision.py dev                    apply (asks before deleting or replacing anything)
  python provision.py production --check     report drift from environments/production.yaml
  python provision.py dev --destroy --yes    remove everything labelled for dev
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (what is wrong, where the manual is), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="provision.py", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Create or update the Hetzner Cloud resources of an environment from environments/<env>.yaml "
                    "(found by label, no state file), then write the pyinfra inventory inventories/<env>.py.")
    p.add_argument("env", help="environment name: environments/<env>.yaml")
    p.add_argument("--dry-run", action="store_true", help="show the plan and its cost; change nothing")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before deleting or replacing")
    p.add_argument("--destroy", action="store_true",
                   help="delete everything labelled for the env, and what its cluster created (LBs, volumes)")
    p.add_argument("--force", action="store_true", help="lift delete protection where the plan deletes or replaces")
    p.add_argument("--replace-volumes", action="store_true",
                   help="when servers move to another location, replace their volumes with new empty ones there "
                        "(the old volumes and their data are deleted: back up and restore first)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON (for automation)")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when changes are pending")
    p.add_argument("--check", action="store_true", help="report drift (exit 2 when any); change nothing")
    p.add_argument("--concurrency", type=int, default=16,
                   help="parallel changes at most (default 16; actions are polled in batches, so more changes "
                        "in flight cost no more requests)")
    p.add_argument("--admin-ip", help="this machine's public address, for the lock-out check")
    p.add_argument("--allow-lockout", action="store_true",
                   help="go ahead although this machine's address is not in admin_cidrs")
    p.add_argument("--allow-wide-admin-cidrs", action="store_true",
                   help="accept admin_cidrs that together span more than a /16 (IPv4) or a /48 (IPv6): wider "
                        "than an office or VPN")
    p.add_argument("--verbose", "-v", action="store_true", help="also list unchanged resources")
    p.add_argument("--refresh-inventory", action="store_true",
                   help="with --dry-run or --check: also write inventories/<env>.py from the servers as they are "
                        "(nothing in the cloud changes; invoke plan uses it to plan the hosts)")
    p.add_argument("--env-dir", type=Path, default=paths.environments_dir(), help=argparse.SUPPRESS)
    p.add_argument("--inventory-dir", type=Path, default=paths.inventories_dir(), help=argparse.SUPPRESS)
    return p


def parse(argv: list[str]) -> Options:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.concurrency <= 64:
        parser.error("--concurrency must be between 1 and 64")
    if args.refresh_inventory and not (args.dry_run or args.check):
        parser.error("--refresh-inventory goes with --dry-run or --check (an apply writes the inventory anyway)")
    if args.admin_ip is not None:
        import ipaddress

        try:
            args.admin_ip = str(ipaddress.ip_address(args.admin_ip.strip()))
        except ValueError:
            parser.error(f"--admin-ip {args.admin_ip[:60]!r} is not an IP address (e.g. 203.0.113.7)")
    return Options(env=args.env, env_dir=args.env_dir, inventory_dir=args.inventory_dir, dry_run=args.dry_run,
                   yes=args.yes, destroy=args.destroy, force=args.force, json=args.json,
                   detailed_exitcode=args.detailed_exitcode, check=args.check, concurrency=args.concurrency,
                   admin_ip=args.admin_ip, allow_lockout=args.allow_lockout,
                   allow_wide_admin_cidrs=args.allow_wide_admin_cidrs, verbose=args.verbose,
                   replace_volumes=args.replace_volumes, refresh_inventory=args.refresh_inventory)


def main(argv: list[str] | None = None) -> int:
    """``python provision.py``: the command line in, the exit status out."""
    return run(parse(argv if argv is not None else sys.argv[1:]))
