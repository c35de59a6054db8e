#!/usr/bin/env bash
# One command for a newcomer: install everything (as root also what the real machines need),
# start localcloud and run the platform team's whole path on it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if [ "$(id -u)" = 0 ]; then
    scripts/hosts-deps.sh
else
    echo "quickstart: not root: localcloud runs its API only (real machines need root for systemd-nspawn," \
         "network namespaces and loop devices); run as root for the full demo" >&2
fi
exec .venv/bin/invoke demo
