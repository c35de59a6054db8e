"""Coverage report of a test run whose processes all wrote coverage data (scripts/test.sh with
NORNOS_COVERAGE=1, scripts/coverage.sh): combines the data files, prints coverage's table
(lowest modules first), then the figure per package and the lowest modules outside
localcloud/hosts/ (which drives real machines: only the e2e tests reach it).

    .venv/bin/python scripts/coverage_report.py <data directory> <rcfile>
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

LOWEST_SHOWN = 8


def package_of(path: str) -> str:
    """``nornos_infra/cloud/apply.py`` -> ``nornos_infra/cloud``; ``provision.py`` -> itself."""
    parts = path.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else parts[0]


def percent(summaries: list[dict[str, int]]) -> float:
    lines = sum(s["num_statements"] for s in summaries)
    return 100.0 * sum(s["covered_lines"] for s in summaries) / lines if lines else 100.0


def summary_lines(files: dict[str, dict[str, Any]]) -> list[str]:
    """The two lines after coverage's own table: per package, and the lowest modules."""
    groups: dict[str, list[dict[str, int]]] = {}
    for name, data in files.items():
        groups.setdefault(package_of(name), []).append(data["summary"])
    total = percent([data["summary"] for data in files.values()])
    lowest = sorted((data["summary"]["percent_covered"], name) for name, data in files.items()
                    if data["summary"]["num_statements"] and not name.startswith("localcloud/hosts/"))
    return [f"total {total:.1f} %; by package: "
            + "; ".join(f"{group} {percent(s):.1f} %" for group, s in sorted(groups.items())),
            "lowest (localcloud/hosts/ aside): "
            + "; ".join(f"{name} {pct:.1f} %" for pct, name in lowest[:LOWEST_SHOWN])]


def main(data_dir: Path, rcfile: Path) -> int:
    coverage = [sys.executable, "-m", "coverage"]
    subprocess.run([*coverage, "combine", "--quiet", f"--rcfile={rcfile}", str(data_dir)], check=True)
    subprocess.run([*coverage, "report", f"--rcfile={rcfile}"], check=True)
    report = data_dir / "coverage.json"
    subprocess.run([*coverage, "json", "--quiet", f"--rcfile={rcfile}", "-o", str(report)], check=True)
    for line in summary_lines(json.loads(report.read_text())["files"]):
        print(line)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
