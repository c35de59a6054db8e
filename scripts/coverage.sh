#!/usr/bin/env bash
# Line coverage of nornos_infra/ and localcloud/ by the unit and API tests, subprocesses included
# (provision.py, localcloud, invoke tasks, pytest-xdist workers): every Python process loads
# tests/support/sitecustomize.py, which starts coverage when COVERAGE_PROCESS_START is set.
# Prints the report, lowest-covered modules first, the figure per package and the lowest modules.
# Extra arguments go to pytest, e.g. scripts/coverage.sh -x
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
export COVERAGE_PROCESS_START="$root/tests/support/coveragerc"
export COVERAGE_FILE="$data/.coverage"
export PYTHONPATH="$root/tests/support${PYTHONPATH:+:$PYTHONPATH}"
status=0
.venv/bin/pytest -p no:cacheprovider -n 2 tests/unit tests/api "$@" || status=$?
echo "== coverage (unit + api, subprocesses included)"
.venv/bin/coverage combine --quiet --rcfile="$COVERAGE_PROCESS_START" "$data"
.venv/bin/coverage report --rcfile="$COVERAGE_PROCESS_START"
.venv/bin/coverage json --quiet --rcfile="$COVERAGE_PROCESS_START" -o "$data/coverage.json"
.venv/bin/python - "$data/coverage.json" <<'PY'
import json, sys
files = json.load(open(sys.argv[1]))["files"]
def pct(summaries):
    lines = sum(s["num_statements"] for s in summaries)
    return 100.0 * sum(s["covered_lines"] for s in summaries) / lines if lines else 100.0
groups = {}
for name, f in files.items():
    parts = name.split("/")
    groups.setdefault("/".join(parts[:2]) if len(parts) > 2 else parts[0], []).append(f["summary"])
print("by package: " + "; ".join(f"{g} {pct(s):.1f} %" for g, s in sorted(groups.items())))
# localcloud/hosts/ drives real machines: only the e2e tests (root, systemd-nspawn) reach it
rest = sorted((f["summary"]["percent_covered"], n) for n, f in files.items()
              if f["summary"]["num_statements"] and not n.startswith("localcloud/hosts/"))
print("lowest (localcloud/hosts/ aside): " + "; ".join(f"{n} {p:.1f} %" for p, n in rest[:8]))
PY
exit $status
