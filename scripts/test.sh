#!/usr/bin/env bash
# The test command: lint (ruff), types (mypy strict on the library and localcloud), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "== ruff"; .venv/bin/ruff check localcloud tests benchmarks tasks.py
echo "== mypy"; .venv/bin/mypy localcloud
echo "== pytest"; .venv/bin/pytest -p no:cacheprovider "$@"
