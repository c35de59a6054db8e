"""Waiting for actions with batched polling, as hcloud-go does.

Workers hand their action ids to one :class:`ActionWaiter`; a single poller asks
``GET /actions?id=..&id=..`` for up to 25 ids at a time every ``interval`` seconds, so
twenty servers being created cost one request per poll, not twenty.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from nornos_infra.cloud.connection import Connection
from nornos_infra.errors import UserError

BATCH = 25


class ActionFailed(UserError):
    """An action ended in ``error``; the message names the command and the API's reason."""


@dataclass
class Progress:
    running: int
    finished: int


class ActionWaiter:
    def __init__(self, conn: Connection, interval: float = 0.5, timeout: float = 1800.0,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.conn = conn
        self.interval = interval
        self.timeout = timeout
        self.on_progress = on_progress
        self._pending: dict[int, Future[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._finished = 0
        self.polls = 0

    def wait(self, actions: Iterable[dict[str, Any] | Any]) -> list[dict[str, Any]]:
        """Block until every action succeeded; ActionFailed on the first that failed."""
        futures = []
        for action in actions:
            ident, status, error, command = _fields(action)
            if status == "success":
                continue
            if status == "error":
                raise ActionFailed(f"{command} failed: {error}")
            futures.append(self._register(ident))
        results = []
        deadline = time.monotonic() + self.timeout
        for future in futures:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                result = future.result(timeout=remaining)
            except TimeoutError:
                raise UserError(f"actions did not finish within {self.timeout:.0f} s; "
                                "run again later to continue") from None
            results.append(result)
        return results

    def _register(self, ident: int) -> Future[dict[str, Any]]:
        with self._lock:
            future = self._pending.get(ident)
            if future is None:
                future = Future()
                self._pending[ident] = future
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._poll_loop, name="action-waiter", daemon=True)
                self._thread.start()
        return future

    def _poll_loop(self) -> None:
        time.sleep(self.interval)  # actions are never done at once; let parallel workers register first
        while True:
            with self._lock:
                ids = list(self._pending)
            if not ids:
                with self._lock:
                    if not self._pending:
                        self._thread = None
                        return
                continue
            for start in range(0, len(ids), BATCH):
                batch = ids[start:start + BATCH]
                try:
                    # only ``id`` is a parameter of GET /actions (spec); 25 ids fit its default page of 25
                    data = self.conn.request("GET", "/actions", "poll actions", params={"id": batch})
                except Exception as exc:  # give every waiter the reason instead of hanging
                    self._fail_all(batch, exc)
                    continue
                self.polls += 1
                for action in data.get("actions", []):
                    self._settle(action)
            if self.on_progress is not None:
                with self._lock:
                    running = len(self._pending)
                self.on_progress(Progress(running=running, finished=self._finished))
            time.sleep(self.interval)  # a fixed pace: new waiters join the next batch

    def _settle(self, action: dict[str, Any]) -> None:
        if action["status"] == "running":
            return
        with self._lock:
            future = self._pending.pop(action["id"], None)
            self._finished += 1
        if future is None:
            return
        if action["status"] == "success":
            future.set_result(action)
        else:
            error = action.get("error") or {}
            future.set_exception(ActionFailed(
                f"{action['command']} failed: {error.get('message', 'unknown error')} ({error.get('code', '?')})"))

    def _fail_all(self, ids: list[int], exc: Exception) -> None:
        with self._lock:
            futures = [self._pending.pop(i) for i in ids if i in self._pending]
        for future in futures:
            future.set_exception(exc)


def _fields(action: Any) -> tuple[int, str, str, str]:
    if isinstance(action, dict):
        error = action.get("error") or {}
        return int(action["id"]), action["status"], str(error.get("message", "")), action["command"]
    error = getattr(action, "error", None) or {}
    return int(action.id), str(action.status), str(error.get("message", "") if isinstance(error, dict) else error), \
        str(action.command)
