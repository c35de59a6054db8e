"""Snapshot retention by labels (nornos_infra/snapshots.py): the newest N runs of each pool stay,
with simulated dates; a snapshot made by hand (no run label) is never ours to prune."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nornos_infra import snapshots
from nornos_infra.errors import UserError
from nornos_infra.snapshots import Snapshot

START = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def runs(days: int, pools: dict[str, int]) -> list[Snapshot]:
    """One run a day for ``days`` days: a snapshot of each server of each pool."""
    return [Snapshot(1000 + day * 100 + n, f"{pool}-{i + 1}", pool, START + timedelta(days=day), 1.5, False)
            for day in range(days) for n, (pool, i) in enumerate((p, i) for p, count in pools.items()
                                                                 for i in range(count))]


@pytest.mark.parametrize("keep", [1, 3, 7])
def test_prune_keeps_exactly_the_newest_runs_of_each_pool(keep: int) -> None:
    taken = runs(10, {"workers": 2, "postgres": 1})
    doomed = snapshots.to_prune(taken, keep)
    left = [s for s in taken if s not in doomed]
    for pool, servers in (("workers", 2), ("postgres", 1)):
        kept_runs = sorted({s.taken for s in left if s.pool == pool})
        assert kept_runs == [START + timedelta(days=d) for d in range(10 - keep, 10)]
        assert len([s for s in left if s.pool == pool]) == keep * servers
    assert all(s.taken < START + timedelta(days=10 - keep) for s in doomed)


def test_a_pool_snapshotted_less_often_keeps_its_own_newest_runs() -> None:
    daily = runs(5, {"workers": 1})
    weekly = [Snapshot(9000 + d, "postgres-1", "postgres", START + timedelta(days=d), 9.0, False) for d in (0, 7, 14)]
    doomed = snapshots.to_prune(daily + weekly, 2)
    assert [s.id for s in doomed if s.pool == "postgres"] == [9000]
    assert sorted(s.taken.day for s in daily if s not in doomed) == [4, 5]


def test_keep_must_be_at_least_one() -> None:
    with pytest.raises(UserError, match=r"^--keep 0: keep at least the newest run \(1 or more\)$"):
        snapshots.to_prune(runs(2, {"workers": 1}), 0)


def test_images_without_our_run_label_are_not_ours() -> None:
    ours = {"id": 5, "labels": {snapshots.RUN_LABEL: "20261101t020000z", snapshots.SERVER_LABEL: "redis-1",
                                "nornos.io/pool": "redis"}, "image_size": 2.25, "protection": {"delete": True}}
    assert snapshots._parse(ours) == Snapshot(5, "redis-1", "redis", START, 2.25, True)
    assert snapshots._parse({"id": 6, "labels": {"nornos.io/env": "dev"}}) is None
    assert snapshots._parse({"id": 7, "labels": {snapshots.RUN_LABEL: "yesterday"}}) is None
