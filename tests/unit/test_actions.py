"""The action engine with a fake clock: running -> success/error, progress, locks, handlers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localcloud import errors
from localcloud.actions import ActionEngine, on_complete, on_failure
from localcloud.profiles import PROFILES, duration
from localcloud.store import Doc, Store

EVENTS: list[tuple[str, int, dict[str, Any]]] = []


@on_complete("unit.thing_ready")
def _ready(store: Store, action: Doc, params: dict[str, Any]) -> None:
    thing = store.get("thing", action["resources"][0]["id"])
    assert thing is not None
    thing["status"] = "ready"
    store.put("thing", thing)
    EVENTS.append(("complete", action["id"], params))


@on_failure("unit.thing_ready")
def _undo(store: Store, action: Doc, params: dict[str, Any]) -> None:
    thing = store.get("thing", action["resources"][0]["id"])
    assert thing is not None
    thing["status"] = "broken"
    store.put("thing", thing)
    EVENTS.append(("failure", action["id"], params))


@on_complete("unit.refuses")
def _refuses(store: Store, action: Doc, params: dict[str, Any]) -> None:
    raise errors.ApiError("server_not_stopped", "the server must be stopped")


@on_complete("unit.crashes")
def _crashes(store: Store, action: Doc, params: dict[str, Any]) -> None:
    thing = store.get("thing", action["resources"][0]["id"])
    assert thing is not None
    thing["status"] = "half-done"  # changed in place, then a bug
    raise KeyError("bug")


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> Store:
    s = Store(None)
    s.put("thing", {"id": 1, "status": "new"})
    return s


@pytest.fixture
def engine(store: Store, clock: Clock) -> ActionEngine:
    EVENTS.clear()
    return ActionEngine(store, "fast", 1.0, clock)


def test_running_until_due_then_success(engine: ActionEngine, clock: Clock, store: Store) -> None:
    action = engine.start("start_server", [("thing", 1)], finish="unit.thing_ready", params={"x": 1})
    took = duration("fast", "start_server", 1.0)
    assert took == PROFILES["fast"]["start_server"]
    shown = engine.render(action)
    assert (shown["status"], shown["progress"], shown["finished"], shown["error"]) == ("running", 0, None, None)
    assert shown["resources"] == [{"id": 1, "type": "thing"}]
    assert not any(k.startswith("_") for k in shown)
    assert shown["id"] > 2**32 and shown["started"].endswith("+00:00")
    clock.now += took / 2
    assert engine.advance() == 0
    assert engine.render(action)["progress"] == 50
    clock.now += took  # past due
    assert engine.advance() == 1
    done = store.get("action", action["id"])
    assert done is not None and engine.render(done)["status"] == "success"
    assert done["progress"] == 100 and done["finished"] is not None
    assert store.get("thing", 1) == {"id": 1, "status": "ready"}
    assert [("complete", action["id"], {"x": 1})] == EVENTS
    assert engine.advance() == 0  # finished once


def test_actions_finish_in_due_order(engine: ActionEngine, clock: Clock, store: Store) -> None:
    slow = engine.start("create_image", [("thing", 1)])  # 0.2 s in "fast"
    quick = engine.start("whatever", [("thing", 1)])  # default 0.05 s
    clock.now += 0.1
    assert engine.advance() == 1
    assert store.get("action", quick["id"])["status"] == "success"  # type: ignore[index]
    assert store.get("action", slow["id"])["status"] == "running"  # type: ignore[index]


def test_time_scale_multiplies_and_zero_finishes_at_next_advance(store: Store, clock: Clock) -> None:
    slow = ActionEngine(store, "realistic", 2.0, clock)
    action = slow.start("create_server", [("thing", 1)])
    assert action["_due"] - action["_t0"] == pytest.approx(24.0)
    instant = ActionEngine(store, "fast", 0.0, clock)
    action = instant.start("create_server", [("thing", 1)])
    assert action["status"] == "running"
    assert instant.advance() == 1 and action["status"] == "success"


def test_locked_while_running(engine: ActionEngine, clock: Clock) -> None:
    assert not engine.is_locked("thing", 1)
    engine.start("reboot_server", [("thing", 1)])
    assert engine.is_locked("thing", 1)
    assert not engine.is_locked("thing", 2) and not engine.is_locked("other", 1)
    clock.now += 1
    assert engine.is_locked("thing", 1)  # still running until advance() finishes it
    engine.advance()
    assert not engine.is_locked("thing", 1)


def test_delayed_action_does_not_lock_before_it_starts(engine: ActionEngine, clock: Clock) -> None:
    action = engine.start("start_server", [("thing", 1)], delay=1.0)
    assert not engine.is_locked("thing", 1)
    clock.now += 1.01
    assert engine.is_locked("thing", 1)
    assert engine.render(action)["progress"] < 99
    clock.now += 1
    engine.advance()
    assert action["status"] == "success"


def test_instant_action_is_already_done(engine: ActionEngine) -> None:
    action = engine.start("change_protection", [("thing", 1)], instant=True)
    assert (action["status"], action["progress"]) == ("success", 100)
    assert action["finished"] == action["started"]
    assert not engine.is_locked("thing", 1)


def test_fault_injected_failure_runs_the_failure_handler(engine: ActionEngine, clock: Clock,
                                                         store: Store) -> None:
    engine.failing = {"start_server": 1.0}
    action = engine.start("start_server", [("thing", 1)], finish="unit.thing_ready")
    other = engine.start("stop_server", [("thing", 1)])
    clock.now += 1
    engine.advance()
    assert action["status"] == "error"
    assert action["error"] == {"code": "action_failed", "message": "start_server failed (injected fault)"}
    assert other["status"] == "success"
    assert store.get("thing", 1) == {"id": 1, "status": "broken"}
    assert [e[0] for e in EVENTS] == ["failure"]


def test_failure_probability_uses_the_engine_rng(engine: ActionEngine, clock: Clock) -> None:
    engine.failing = {"add_subnet": 0.5}
    engine.rng.seed(7)
    actions = [engine.start("add_subnet", [("thing", 1)]) for _ in range(200)]
    clock.now += 1
    engine.advance()
    failed = sum(a["status"] == "error" for a in actions)
    assert 60 < failed < 140


def test_completion_handler_refusing_fails_the_action(engine: ActionEngine, clock: Clock) -> None:
    action = engine.start("poweron", [("thing", 1)], finish="unit.refuses")
    clock.now += 1
    engine.advance()
    assert action["status"] == "error"
    assert action["error"] == {"code": "server_not_stopped", "message": "the server must be stopped"}


def test_fail_now_marks_the_action_for_failure(engine: ActionEngine, clock: Clock, store: Store) -> None:
    action = engine.start("attach_volume", [("thing", 1)], finish="unit.thing_ready")
    engine.fail_now(action, "volume_already_attached", "already attached")
    clock.now += 1
    engine.advance()
    assert action["error"] == {"code": "volume_already_attached", "message": "already attached"}
    assert store.get("thing", 1) == {"id": 1, "status": "broken"}


def test_a_crashing_handler_fails_its_action_and_rolls_back(engine: ActionEngine, clock: Clock,
                                                            store: Store) -> None:
    action = engine.start("start_server", [("thing", 1)], finish="unit.crashes")
    later = engine.start("create_image", [("thing", 1)])
    clock.now += 1
    assert engine.advance() == 2  # the crash neither escapes nor stops the others
    failed = store.get("action", action["id"])
    assert failed is not None and failed["status"] == "error" and failed["error"]["code"] == "server_error"
    assert store.get("thing", 1) == {"id": 1, "status": "new"}  # the half-done change was undone
    assert later["status"] == "success"
    assert not engine.is_locked("thing", 1)


def test_running_actions_finish_after_a_restart(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "s.sqlite3"
    first_store = Store(path)
    first_store.put("thing", {"id": 1, "status": "new"})
    first = ActionEngine(first_store, "fast", 1.0, clock)
    action = first.start("start_server", [("thing", 1)], finish="unit.thing_ready")
    first_store.close()
    clock.now += 5
    second_store = Store(path)
    second = ActionEngine(second_store, "fast", 1.0, clock)  # rebuilt from the running actions
    assert second.is_locked("thing", 1)
    assert second.advance() == 1
    assert second_store.get("action", action["id"])["status"] == "success"  # type: ignore[index]
    assert second_store.get("thing", 1) == {"id": 1, "status": "ready"}


def test_reset_forgets_pending_actions(engine: ActionEngine, store: Store, clock: Clock) -> None:
    engine.start("start_server", [("thing", 1)])
    store.reset()
    engine.reset()
    clock.now += 1
    assert engine.advance() == 0 and not engine.is_locked("thing", 1)
