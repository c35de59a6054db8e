#!/usr/bin/env bash
# The test command: lint (ruff), types (mypy strict on the library and localcloud), then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
# NORNOS_COVERAGE=1 (CI sets it): line coverage of the whole run, subprocesses included, printed
# at the end with the lowest modules named (scripts/coverage_report.py; docs/TESTING.md)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# real hosts for the e2e tests (localcloud --hosts nspawn) need root and a few Debian packages;
# without them those tests skip and say why
if [ "$(id -u)" = 0 ]; then scripts/hosts-deps.sh; fi
echo "== ruff"; .venv/bin/ruff check localcloud nornos_infra deploys tests benchmarks tasks.py provision.py
echo "== mypy"; .venv/bin/mypy localcloud nornos_infra
# the layer rules of pyproject.toml [tool.importlinter] (imports inside functions count): an arrow
# pointing the wrong way fails the run
echo "== import contracts"; .venv/bin/lint-imports --no-cache --no-logo
if [ -n "${NORNOS_COVERAGE:-}" ]; then
    # every Python process the tests start loads tests/support/sitecustomize.py, which starts
    # coverage when COVERAGE_PROCESS_START is set
    coverage_data=$(mktemp -d)
    trap 'rm -rf "$coverage_data"' EXIT
    export COVERAGE_PROCESS_START="$PWD/tests/support/coveragerc" COVERAGE_FILE="$coverage_data/.coverage"
    export PYTHONPATH="$PWD/tests/support${PYTHONPATH:+:$PYTHONPATH}"
fi
echo "== pytest"
status=0
.venv/bin/pytest -p no:cacheprovider "$@" || status=$?
if [ -n "${NORNOS_COVERAGE:-}" ]; then
    echo "== coverage (every test that ran, subprocesses included)"
    .venv/bin/python scripts/coverage_report.py "$coverage_data" "$COVERAGE_PROCESS_START" || status=$((status ? status : 1))
fi
exit $status
