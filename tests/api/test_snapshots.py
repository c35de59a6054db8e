"""``invoke snapshot`` against localcloud's API: snapshots of every server or one pool, labelled
so they are found again; retention by those labels on simulated dates; a restore that rebuilds
the server from its own snapshot, refused for another server's or without --yes and a terminal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from nornos_infra import snapshots
from nornos_infra.cloud.connection import Connection
from tests.api.test_invoke_plan import Project
from tests.conftest import TOKEN, LocalCloud

DAY = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


@pytest.fixture
def provisioned(localcloud: LocalCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Project, Connection]:
    localcloud.reset()
    project = Project(localcloud, tmp_path)
    assert project.invoke("provision", "--env", "dev", "--yes").returncode == 0
    monkeypatch.setenv("HCLOUD_ENDPOINT", localcloud.endpoint)
    monkeypatch.setenv("HCLOUD_TOKEN", TOKEN)
    monkeypatch.setenv("NORNOS_POLL_INTERVAL", "0.05")
    return project, Connection.from_environment()


def images(lc: LocalCloud) -> list[dict[str, object]]:
    reply = requests.get(f"{lc.endpoint}/images", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10,
                         params={"type": "snapshot"})
    return list(reply.json()["images"])


def test_invoke_snapshot_of_one_pool_labels_each_image(provisioned: tuple[Project, Connection]) -> None:
    project, _ = provisioned
    done = project.invoke("snapshot", "--env", "dev", "--pool", "workers")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 snapshot(s) of dev taken ")
    made = images(project.lc)
    assert sorted(str(i["labels"]["nornos.io/server"]) for i in made) == [  # type: ignore[index]
        "nornos-dev-workers-1", "nornos-dev-workers-2"]
    for image in made:
        labels = image["labels"]
        assert labels["nornos.io/env"] == "dev" and labels["nornos.io/pool"] == "workers"  # type: ignore[index]
    listed = project.invoke("snapshot.list", "--env", "dev")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 2
    assert "nornos-dev-workers-1" in listed.stdout and "workers" in listed.stdout


def test_retention_keeps_the_newest_runs_per_pool(provisioned: tuple[Project, Connection]) -> None:
    project, conn = provisioned
    for day in range(4):
        snapshots.take(conn, "dev", "redis", now=DAY + timedelta(days=day))
        snapshots.take(conn, "dev", "postgres", now=DAY + timedelta(days=day))
    dry = project.invoke("snapshot.prune", "--env", "dev", "--keep", "2", "--dry-run")
    assert dry.returncode == 0 and "would delete 4 snapshot(s)" in dry.stdout
    assert len(images(project.lc)) == 8
    done = project.invoke("snapshot.prune", "--env", "dev", "--keep", "2")
    assert done.returncode == 0 and "deleted 4 snapshot(s)" in done.stdout, done.stdout + done.stderr
    left = snapshots.listing(conn, "dev")
    assert sorted((s.pool, s.taken.day) for s in left) == [("postgres", 22), ("postgres", 23), ("redis", 22),
                                                            ("redis", 23)]


def test_restore_rebuilds_a_server_from_its_own_snapshot(provisioned: tuple[Project, Connection]) -> None:
    project, conn = provisioned
    made, = snapshots.take(conn, "dev", "redis", now=DAY)
    refused = project.invoke("snapshot.restore", "--env", "dev", "--server", "nornos-dev-redis-1",
                             "--image", str(made.id))
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith("nothing was changed: re-run with --yes")
    other = project.invoke("snapshot.restore", "--env", "dev", "--server", "nornos-dev-workers-1",
                           "--image", str(made.id), "--yes")
    assert other.returncode == 1 and f"snapshot {made.id} is of nornos-dev-redis-1, not nornos-dev-workers-1" \
        in other.stderr
    project.lc.side("DELETE", "requests")
    done = project.invoke("snapshot.restore", "--env", "dev", "--server", "nornos-dev-redis-1",
                          "--image", str(made.id), "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"nornos-dev-redis-1 rebuilt from snapshot {made.id} ")
    rebuilds = [r for r in project.lc.requests_log() if r["path"].endswith("/actions/rebuild")]
    assert [(r["method"], r["status"]) for r in rebuilds] == [("POST", 201)]
