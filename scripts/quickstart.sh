#!/usr/bin/env bash
# One command for a newcomer: install everything, start localcloud and show it serving.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/invoke demo
