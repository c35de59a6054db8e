"""Store: transactions commit together or roll back docs and counters; state survives reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from localcloud.store import Store


class Boom(Exception):
    pass


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite3")


def test_ids_start_at_realistic_bases_and_count_up(store: Store) -> None:
    assert store.next_id("action") == 4_300_000_001
    assert store.next_id("action") == 4_300_000_002
    assert store.next_id("ssh_key") == 20_000_001
    assert store.next_id("something_new") == 1_001


def test_commit_writes_every_change_at_once(store: Store, tmp_path: Path) -> None:
    with store.transaction():
        for _ in range(3):
            store.put("ssh_key", {"id": store.next_id("ssh_key"), "name": "k"})
        store.delete("ssh_key", 20_000_002)
    other = Store(tmp_path / "db.sqlite3")  # a second connection sees the committed state
    assert [d["id"] for d in other.all("ssh_key")] == [20_000_001, 20_000_003]
    assert other.next_id("ssh_key") == 20_000_004


def test_rollback_restores_docs_and_counters(store: Store) -> None:
    with store.transaction():
        store.put("server", {"id": store.next_id("server"), "name": "a", "labels": {}})
    with pytest.raises(Boom), store.transaction():
        doc = store.get("server", 50_000_001)
        assert doc is not None
        doc["name"] = "changed"
        store.put("server", doc)
        store.put("server", {"id": store.next_id("server"), "name": "b"})
        store.delete("server", 50_000_001)
        raise Boom
    assert [d["name"] for d in store.all("server")] == ["a"]
    assert store.next_id("server") == 50_000_002  # the counter went back too


def test_rollback_restores_docs_changed_in_place_without_put(store: Store) -> None:
    store.put("network", {"id": 1, "name": "n", "subnets": []})
    store.put("network", {"id": 2, "name": "m", "subnets": []})
    with pytest.raises(Boom), store.transaction():
        doc = store.get("network", 1)
        assert doc is not None
        doc["subnets"].append("10.0.1.0/24")  # a handler that mutates and then fails
        for listed in store.all("network"):
            listed["name"] = "renamed"
        raise Boom
    assert store.get("network", 1) == {"id": 1, "name": "n", "subnets": []}
    assert store.get("network", 2) == {"id": 2, "name": "m", "subnets": []}


def test_nested_transactions_commit_or_roll_back_as_one(store: Store, tmp_path: Path) -> None:
    with pytest.raises(Boom), store.transaction():
        with store.transaction():
            store.put("volume", {"id": store.next_id("volume")})
        raise Boom
    assert store.count("volume") == 0
    assert Store(tmp_path / "db.sqlite3").count("volume") == 0


def test_a_failed_commit_is_undone_and_does_not_poison_later_ones(store: Store) -> None:
    store.put("image", {"id": 1, "name": "ok"})
    with pytest.raises(TypeError), store.transaction():
        doc = store.get("image", 1)
        assert doc is not None
        doc["name"] = "changed"
        store.put("image", doc)
        store.put("image", {"id": 2, "bad": {1, 2}})  # a set is not JSON: the commit fails
    assert store.get("image", 1) == {"id": 1, "name": "ok"}
    assert store.get("image", 2) is None
    with store.transaction():
        store.put("image", {"id": 3, "name": "later"})
    assert [d["id"] for d in store.all("image")] == [1, 3]


def test_writes_outside_a_transaction_are_flushed_at_once(store: Store, tmp_path: Path) -> None:
    store.put("firewall", {"id": 7, "rules": []})
    assert Store(tmp_path / "db.sqlite3").get("firewall", 7) == {"id": 7, "rules": []}


def test_state_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = Store(path)
    with first.transaction():
        ident = first.next_id("server")
        first.put("server", {"id": ident, "name": "persist", "labels": {"a": "b"}})
    first.set_meta("version", {"schema": 1})
    first.close()
    second = Store(path)
    assert second.get("server", ident) == {"id": ident, "name": "persist", "labels": {"a": "b"}}
    assert second.next_id("server") == ident + 1
    assert second.get_meta("version") == {"schema": 1}
    assert second.get_meta("missing", "default") == "default"


def test_all_is_in_id_order_and_reset_forgets_everything(store: Store) -> None:
    for ident in (5, 1, 3):
        store.put("ssh_key", {"id": ident})
    assert [d["id"] for d in store.all("ssh_key")] == [1, 3, 5]
    assert store.count("ssh_key") == 3 and store.all("nothing") == []
    store.next_id("ssh_key")
    store.reset()
    assert store.count("ssh_key") == 0
    assert store.next_id("ssh_key") == 20_000_001


def test_snapshot_is_a_deep_copy(store: Store) -> None:
    store.put("server", {"id": 1, "labels": {"a": "b"}})
    snap = store.snapshot("server", 1)
    assert snap is not None
    snap["labels"]["a"] = "changed"
    assert store.get("server", 1) == {"id": 1, "labels": {"a": "b"}}
    assert store.snapshot("server", 2) is None


def test_memory_only_store_works_without_a_path() -> None:
    store = Store(None)
    with store.transaction():
        store.put("ssh_key", {"id": store.next_id("ssh_key")})
    assert store.count("ssh_key") == 1
