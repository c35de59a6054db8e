#!/usr/bin/env bash
# The test command: lint (ruff), types (mypy strict on the library and localcloud), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# real hosts for the e2e tests (localcloud --hosts nspawn) need root and a few Debian packages;
# without them those tests skip and say why
if [ "$(id -u)" = 0 ]; then scripts/hosts-deps.sh; fi
echo "== ruff"; .venv/bin/ruff check localcloud nornos_infra deploys tests benchmarks tasks.py provision.py
echo "== mypy"; .venv/bin/mypy localcloud nornos_infra
echo "== pytest"; .venv/bin/pytest -p no:cacheprovider "$@"
