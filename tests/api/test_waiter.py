"""The action poller (nornos_infra/cloud/waiter.py) against a real localcloud: success in
batches of at most 25 ids, an action that fails, one that does not finish in time, and a
poll request the API refuses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from hcloud import APIException

from nornos_infra.cloud.connection import Connection
from nornos_infra.cloud.waiter import ActionFailed, ActionWaiter
from nornos_infra.errors import UserError
from tests.conftest import TOKEN, LocalCloud


@pytest.fixture
def conn(localcloud: LocalCloud) -> Iterator[Connection]:
    localcloud.reset()
    yield Connection(token=TOKEN, endpoint=localcloud.endpoint, budget=5.0, poll_interval=0.02)
    localcloud.reset()  # back to the starting time scale and no faults


def volume_actions(conn: Connection, n: int) -> list[dict[str, Any]]:
    """``n`` running actions: creates of volumes without a server."""
    actions = []
    for i in range(n):
        data = conn.request("POST", "/volumes", "create", json={"name": f"v{i}", "size": 10, "location": "fsn1"})
        actions.append(data["action"])
    return actions


def polls(lc: LocalCloud) -> list[list[str]]:
    """The id lists of every GET /actions the poller sent."""
    return [parse_qs(r["query"]).get("id", []) for r in lc.requests_log()
            if r["method"] == "GET" and r["path"] == "/actions"]


def test_many_actions_are_polled_in_batches_of_25(conn: Connection, localcloud: LocalCloud) -> None:
    localcloud.side("PUT", "config", {"time_scale": 1.0})
    actions = volume_actions(conn, 30)
    assert all(a["status"] == "running" for a in actions)
    localcloud.side("DELETE", "requests")
    waiter = ActionWaiter(conn, interval=0.02)
    results = waiter.wait(actions)
    assert sorted(r["id"] for r in results) == sorted(a["id"] for a in actions)
    assert all(r["status"] == "success" for r in results)
    batches = polls(localcloud)
    assert batches and all(1 <= len(b) <= 25 for b in batches)
    assert {int(i) for b in batches for i in b} == {a["id"] for a in actions}
    assert len(batches) == waiter.polls
    # one poller for all of them: each round asks for every action still running, in at most two requests
    assert len(batches) < 2 * len(actions)


def test_a_failed_action_names_its_command_and_the_api_reason(conn: Connection, localcloud: LocalCloud) -> None:
    localcloud.side("PUT", "config", {"time_scale": 1.0})
    localcloud.side("PUT", "faults", {"actions": {"create_volume": 1.0}})
    failing, = volume_actions(conn, 1)
    assert failing["status"] == "running"
    with pytest.raises(ActionFailed) as err:
        ActionWaiter(conn, interval=0.02).wait([failing])
    final = conn.request("GET", f"/actions/{failing['id']}", "read")["action"]
    assert final["status"] == "error"
    assert str(err.value) == f"create_volume failed: {final['error']['message']} ({final['error']['code']})"


def test_an_action_already_failed_in_the_reply_fails_without_polling(conn: Connection,
                                                                      localcloud: LocalCloud) -> None:
    localcloud.side("DELETE", "requests")
    action = {"id": 1, "command": "attach_volume", "status": "error", "error": {"code": "x", "message": "no disk"}}
    with pytest.raises(ActionFailed, match=r"^attach_volume failed: no disk$"):
        ActionWaiter(conn, interval=0.02).wait([action])
    assert polls(localcloud) == []


def test_finished_actions_cost_no_request(conn: Connection, localcloud: LocalCloud) -> None:
    localcloud.side("DELETE", "requests")
    done = {"id": 7, "command": "create_server", "status": "success", "error": None}
    assert ActionWaiter(conn, interval=0.02).wait([done]) == []
    assert localcloud.requests_log() == []


def test_an_action_running_past_the_timeout_is_a_clear_error(conn: Connection, localcloud: LocalCloud) -> None:
    localcloud.side("PUT", "config", {"time_scale": 100.0})  # a volume create now takes minutes
    slow, = volume_actions(conn, 1)
    waiter = ActionWaiter(conn, interval=0.02, timeout=0.3)
    with pytest.raises(UserError) as err:
        waiter.wait([slow])
    assert not isinstance(err.value, ActionFailed)
    assert str(err.value) == "actions did not finish within 0 s; run again later to continue"
    assert waiter.polls >= 2  # it kept asking until the deadline
    assert conn.request("GET", f"/actions/{slow['id']}", "read")["action"]["status"] == "running"


def test_a_refused_poll_fails_every_waiter_with_the_reason(conn: Connection, localcloud: LocalCloud) -> None:
    localcloud.side("PUT", "config", {"time_scale": 1.0})
    actions = volume_actions(conn, 2)
    localcloud.side("PUT", "faults", {"errors": [{"method": "GET", "path": "/actions", "code": "forbidden"}]})
    with pytest.raises(APIException) as err:
        ActionWaiter(conn, interval=0.02).wait(actions)
    assert err.value.code == "forbidden"
