"""The backup scripts' metrics for Prometheus (nornos-backup-lib.sh ``publish_metrics``), run by bash
as on a host: each job's file in the node exporter's textfile directory, valid exposition format
(``promtool check metrics``), a failure keeping the last success's time and size."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nornos_infra.paths import TEMPLATES
from tests.e2e.prerequisites import skip_or_fail

LIB = TEMPLATES / "nornos-backup-lib.sh"


def publish(tmp_path: Path, *args: str, job: str = "postgres", now: int = 1_700_000_000,
            metrics_dir: Path | None = None) -> str:
    """Run the lib's publish_metrics (the function alone: the lib reads the host's backup.env)."""
    metrics_dir = metrics_dir or tmp_path
    text = LIB.read_text()
    function = re.search(r"^publish_metrics\(\) \{.*?^\}$", text, re.S | re.M)
    assert function is not None
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "date").write_text(f"#!/bin/sh\necho {now}\n")
    (bindir / "date").chmod(0o755)
    script = f"set -euo pipefail\nMETRICS_DIR={metrics_dir}\n{function.group(0)}\npublish_metrics {' '.join(args)}\n"
    subprocess.run(["bash", "-c", script], check=True, env={"PATH": f"{bindir}:/usr/bin:/bin"}, timeout=30)
    return (metrics_dir / f"nornos_backup_{job}.prom").read_text()


def values(text: str) -> dict[str, str]:
    return {line.split("{")[0]: line.rsplit(" ", 1)[1] for line in text.splitlines() if not line.startswith("#")}


def test_a_success_then_a_failure(tmp_path: Path) -> None:
    ok = publish(tmp_path, "postgres", "1", "123456", now=1_700_000_000)
    assert values(ok) == {"nornos_backup_last_run_timestamp_seconds": "1700000000", "nornos_backup_last_success": "1",
                          "nornos_backup_last_success_timestamp_seconds": "1700000000",
                          "nornos_backup_last_size_bytes": "123456"}
    assert 'nornos_backup_last_success{backup="postgres"} 1' in ok.splitlines()
    failed = publish(tmp_path, "postgres", "0", now=1_700_086_400)
    assert values(failed) == {"nornos_backup_last_run_timestamp_seconds": "1700086400",
                              "nornos_backup_last_success": "0",
                              "nornos_backup_last_success_timestamp_seconds": "1700000000",
                              "nornos_backup_last_size_bytes": "123456"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("nornos_")] == ["nornos_backup_postgres.prom"], \
        "written whole and renamed: no temporary file left"


def test_a_job_that_never_succeeded(tmp_path: Path) -> None:
    failed = publish(tmp_path, "redis_offsite", "0", job="redis_offsite")
    assert values(failed)["nornos_backup_last_success_timestamp_seconds"] == "0"
    assert values(failed)["nornos_backup_last_size_bytes"] == "0"
    assert 'backup="redis_offsite"' in failed


def test_the_format_is_what_prometheus_reads(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        skip_or_fail("promtool (Debian's prometheus package; scripts/hosts-deps.sh installs it)")
    text = publish(tmp_path, "pitr", "1", "42", job="pitr")
    proc = subprocess.run([str(promtool), "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr


def test_without_the_textfile_directory_nothing_is_written(tmp_path: Path) -> None:
    """A host without the node exporter: the backup still runs (status 0), nothing is written."""
    with pytest.raises(FileNotFoundError, match=r"absent/nornos_backup_postgres\.prom"):
        publish(tmp_path, "postgres", "1", "1", metrics_dir=tmp_path / "absent")
    assert not (tmp_path / "absent").exists()
