"""The action waiter against a scripted API (in process, no localcloud): which polls it sends
(``GET /actions`` with at most 25 ids, every ``interval``), the progress it reports, what a
failed, refused or late action reads like. tests/api/test_waiter.py runs it against localcloud."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from nornos_infra.cloud import waiter as waiter_module
from nornos_infra.cloud.waiter import ActionFailed, ActionWaiter, Progress
from nornos_infra.errors import UserError


class ScriptedAPI:
    """Answers GET /actions: each action's statuses on successive polls (the last one repeats)."""

    def __init__(self, script: dict[int, list[str]], errors: dict[int, dict[str, str] | None] | None = None,
                 refuse: Exception | None = None) -> None:
        self.script = script
        self.errors = errors or {}
        self.refuse = refuse
        self.polls: list[list[int]] = []
        self.seen: dict[int, int] = {}
        self.lock = threading.Lock()

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        assert (method, path, what) == ("GET", "/actions", "poll actions")  # `what` names it in API errors
        assert set(kwargs) == {"params"} and set(kwargs["params"]) == {"id"}
        ids = list(kwargs["params"]["id"])
        with self.lock:
            self.polls.append(ids)
        if self.refuse is not None:
            raise self.refuse
        actions = []
        for ident in ids:
            n = self.seen[ident] = self.seen.get(ident, 0) + 1
            statuses = self.script[ident]
            status = statuses[min(n, len(statuses)) - 1]
            action: dict[str, Any] = {"id": ident, "command": f"cmd_{ident}", "status": status, "error": None}
            if status == "error":
                action["error"] = self.errors.get(ident)
            actions.append(action)
        return {"actions": actions}


def running(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "command": f"cmd_{i}", "status": "running", "error": None} for i in ids]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The poller's pauses, recorded; each lasts 20 ms whatever was asked (the waiters register meanwhile)."""
    recorded: list[float] = []
    real_sleep = time.sleep
    # pollers of earlier tests may still be finishing their last pause: theirs are not recorded
    earlier = {t.ident for t in threading.enumerate()}

    def sleep(seconds: float) -> None:
        if threading.get_ident() not in earlier:
            recorded.append(seconds)
        real_sleep(0.02)

    monkeypatch.setattr(waiter_module.time, "sleep", sleep)
    return recorded


def test_thirty_actions_are_polled_25_then_5_until_all_succeed(sleeps: list[float]) -> None:
    api = ScriptedAPI({i: ["running", "success"] for i in range(1, 31)})
    waiter = ActionWaiter(api, interval=0.7)  # type: ignore[arg-type]
    results = waiter.wait(running(*range(1, 31)))
    assert [r["id"] for r in results] == list(range(1, 31))  # in the order given
    assert all(r["status"] == "success" for r in results)
    assert api.polls == [list(range(1, 26)), list(range(26, 31))] * 2
    assert waiter.polls == 4
    assert sleeps[:2] == [0.7, 0.7]  # one pause first (let workers register), one after each round


def test_progress_is_reported_after_each_round(sleeps: list[float]) -> None:
    api = ScriptedAPI({1: ["success"], 2: ["running", "running", "success"], 3: ["running", "success"]})
    seen: list[Progress] = []
    waiter = ActionWaiter(api, interval=0.1, on_progress=seen.append)  # type: ignore[arg-type]
    waiter.wait(running(1, 2, 3))
    assert seen == [Progress(running=2, finished=1), Progress(running=1, finished=2),
                    Progress(running=0, finished=3)]


def test_finished_actions_need_no_poll_and_a_failed_one_is_named(sleeps: list[float]) -> None:
    api = ScriptedAPI({})
    waiter = ActionWaiter(api)  # type: ignore[arg-type]
    assert waiter.wait([{"id": 1, "command": "create_server", "status": "success", "error": None}]) == []
    with pytest.raises(ActionFailed) as err:
        waiter.wait([{"id": 2, "command": "attach_volume", "status": "error",
                      "error": {"code": "x", "message": "no disk"}}])
    assert str(err.value) == "attach_volume failed: no disk"
    with pytest.raises(ActionFailed, match=r"^attach_volume failed: $"):
        waiter.wait([{"id": 3, "command": "attach_volume", "status": "error", "error": None}])
    assert api.polls == []


class BoundAction:
    """hcloud-python's action objects: attributes, the error a dict or a string."""

    def __init__(self, ident: int, status: str, command: str, error: Any = None) -> None:
        self.id, self.status, self.command, self.error = ident, status, command, error


def test_hcloud_action_objects_are_understood(sleeps: list[float]) -> None:
    api = ScriptedAPI({5: ["running", "success"]})
    waiter = ActionWaiter(api, interval=0.01)  # type: ignore[arg-type]
    done = waiter.wait([BoundAction(4, "success", "create_server"), BoundAction(5, "running", "start_server")])
    assert [r["id"] for r in done] == [5] and api.polls == [[5], [5]]
    with pytest.raises(ActionFailed, match=r"^start_server failed: quota$"):
        waiter.wait([BoundAction(6, "error", "start_server", {"code": "limit", "message": "quota"})])
    with pytest.raises(ActionFailed, match=r"^start_server failed: it broke$"):
        waiter.wait([BoundAction(7, "error", "start_server", "it broke")])
    with pytest.raises(ActionFailed, match=r"^start_server failed: $"):
        waiter.wait([BoundAction(8, "error", "start_server")])


def test_an_action_that_fails_while_polled_names_command_reason_and_code(sleeps: list[float]) -> None:
    api = ScriptedAPI({1: ["running", "error"], 2: ["error"], 3: ["success"]},
                      errors={1: {"code": "server_error", "message": "disk full"}, 2: None})
    with pytest.raises(ActionFailed) as err:
        ActionWaiter(api, interval=0.01).wait(running(1))  # type: ignore[arg-type]
    assert str(err.value) == "cmd_1 failed: disk full (server_error)"
    with pytest.raises(ActionFailed) as err:
        ActionWaiter(api, interval=0.01).wait(running(2, 3))  # type: ignore[arg-type]
    assert str(err.value) == "cmd_2 failed: unknown error (?)"


def test_a_refused_poll_fails_every_waiter_of_the_batch(sleeps: list[float]) -> None:
    refusal = RuntimeError("forbidden")
    api = ScriptedAPI({1: ["running"], 2: ["running"]}, refuse=refusal)
    waiter = ActionWaiter(api, interval=0.01)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError) as err:
        waiter.wait(running(1, 2))
    assert err.value is refusal
    assert api.polls == [[1, 2]] and waiter.polls == 0  # asked once, then nothing left to wait for


def test_an_action_past_the_timeout_is_a_clear_error() -> None:
    api = ScriptedAPI({1: ["running"]})
    waiter = ActionWaiter(api, interval=0.01, timeout=0.6)  # type: ignore[arg-type]
    with pytest.raises(UserError) as err:
        waiter.wait(running(1))
    assert not isinstance(err.value, ActionFailed)
    assert str(err.value) == "actions did not finish within 1 s; run again later to continue"
    assert len(api.polls) >= 2 and set(map(tuple, api.polls)) == {(1,)}


def test_one_action_waited_for_twice_is_polled_once_per_round(sleeps: list[float]) -> None:
    api = ScriptedAPI({1: ["running", "running", "success"], 2: ["running", "success"]})
    waiter = ActionWaiter(api, interval=0.01)  # type: ignore[arg-type]
    results: list[Any] = []
    other = threading.Thread(target=lambda: results.append(waiter.wait(running(1))))
    other.start()
    mine = waiter.wait(running(1, 2))
    other.join(5)
    assert [r["id"] for r in mine] == [1, 2] and [r["id"] for r in results[0]] == [1]
    assert all(len(ids) == len(set(ids)) for ids in api.polls)
    # the poller stops asking when nothing is left, and a later wait starts a new one
    asked = len(api.polls)
    time.sleep(0.2)
    assert len(api.polls) == asked
    api.script[3] = ["success"]
    assert [r["id"] for r in waiter.wait(running(3))] == [3]
    assert api.polls[asked:] == [[3]]
