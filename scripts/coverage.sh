#!/usr/bin/env bash
# Line coverage of nornos_infra/ and localcloud/ by the unit and API tests, subprocesses included
# (provision.py, localcloud, invoke tasks, pytest-xdist workers): scripts/test.sh with
# NORNOS_COVERAGE=1 on tests/unit and tests/api, two workers. Prints coverage's table (lowest
# modules first), the figure per package and the lowest modules (scripts/coverage_report.py).
# Extra arguments go to pytest, e.g. scripts/coverage.sh -x
set -euo pipefail
cd "$(dirname "$0")/.."
NORNOS_COVERAGE=1 exec scripts/test.sh -n 2 tests/unit tests/api "$@"
