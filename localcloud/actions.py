"""Actions: asynchronous tasks that run from ``running`` to ``success`` or ``error``.

An action is due at ``started + duration``; :meth:`ActionEngine.advance` (called before
every request and by a background ticker) finishes due actions in order and runs the
completion handler registered for its kind of work, so that resources change state
when their action ends (a server becomes ``running`` when ``start_server`` succeeds).
Handlers are registered by name, so actions still running when localcloud stops are
finished after a restart.
"""

from __future__ import annotations

import heapq
import logging
import random
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from localcloud import errors
from localcloud.profiles import duration
from localcloud.store import Doc, Store

log = logging.getLogger("localcloud.actions")
CompletionHandler = Callable[[Store, Doc, dict[str, Any]], None]
_COMPLETIONS: dict[str, CompletionHandler] = {}
_FAILURES: dict[str, CompletionHandler] = {}
JOB_POLL_SECONDS = 0.05


def on_complete(name: str) -> Callable[[CompletionHandler], CompletionHandler]:
    """Register what happens when an action with this ``finish`` name succeeds."""

    def register(fn: CompletionHandler) -> CompletionHandler:
        _COMPLETIONS[name] = fn
        return fn

    return register


def on_failure(name: str) -> Callable[[CompletionHandler], CompletionHandler]:
    """Register what happens when an action with this ``finish`` name fails (undo)."""

    def register(fn: CompletionHandler) -> CompletionHandler:
        _FAILURES[name] = fn
        return fn

    return register


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class ActionEngine:
    def __init__(self, store: Store, profile: str = "fast", time_scale: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.profile = profile
        self.time_scale = time_scale
        self.clock = clock
        self.failing: dict[str, float] = {}  # command -> probability of error (fault injection)
        self.rng = random.Random()
        self._due: list[tuple[float, int]] = []
        # action id -> the hosts job it waits for (--hosts nspawn, see localcloud/machines.py):
        # the action stays running until the job is done, and fails when the job fails
        self.jobs: dict[int, Future[Any]] = {}
        for action in store.all("action"):
            if action["status"] == "running":
                heapq.heappush(self._due, (float(action["_due"]), int(action["id"])))

    # -- creation ------------------------------------------------------------------------
    def start(self, command: str, resources: list[tuple[str, int]], *, finish: str | None = None,
              params: dict[str, Any] | None = None, delay: float = 0.0,
              duration_key: str | None = None, instant: bool = False, after: Doc | None = None) -> Doc:
        """Create a running action on ``resources`` [(type, id)].

        ``finish`` names the completion handler; ``delay`` starts it later; ``after`` makes it
        a next action of another action: it starts when that one is due, and fails (running
        its failure handler) if that one failed; ``instant`` makes it succeed in the reply
        (change_protection).
        """
        now = self.clock()
        if after is not None:
            delay = max(delay, float(after["_due"]) - now)
        ident = self.store.next_id("action")
        took = 0.0 if instant else delay + duration(self.profile, duration_key or command, self.time_scale)
        action: Doc = {
            "id": ident,
            "command": command,
            "status": "running",
            "progress": 0,
            "started": iso(now),
            "finished": None,
            "resources": [{"id": rid, "type": rtype} for rtype, rid in resources],
            "error": None,
            "_t0": now + delay,
            "_due": now + took,
            "_finish": finish,
            "_params": params or {},
            "_after": after["id"] if after is not None else None,
        }
        self.store.put("action", action)
        if instant:
            self._finish(action)
        else:
            heapq.heappush(self._due, (action["_due"], ident))
        return action

    def fail_now(self, action: Doc, code: str, message: str) -> None:
        action["_fail"] = {"code": code, "message": message}

    # -- progress ------------------------------------------------------------------------
    def advance(self) -> int:
        """Finish every action that is due; return how many finished."""
        now = self.clock()
        finished = 0
        while self._due and self._due[0][0] <= now:
            _, ident = heapq.heappop(self._due)
            action = self.store.get("action", ident)
            if action is None or action["status"] != "running":
                continue
            if self._waiting(action, now):
                continue
            try:
                with self.store.transaction():
                    self._finish(action)
            except Exception:  # a bug in a handler: fail this action, keep serving
                log.error("completion of action %s (%s) failed\n%s", ident, action.get("command"),
                          traceback.format_exc())
                self._fail_broken(ident, now)
            finished += 1
        return finished

    def _waiting(self, action: Doc, now: float) -> bool:
        """True (and due again shortly) while its hosts job or the action it comes after runs."""
        ident = int(action["id"])
        job = self.jobs.get(ident)
        parent = self.store.get("action", action["_after"]) if action.get("_after") is not None else None
        if (job is not None and not job.done()) or (parent is not None and parent["status"] == "running"):
            heapq.heappush(self._due, (now + JOB_POLL_SECONDS, ident))
            return True
        if job is not None:
            del self.jobs[ident]
            exc = job.exception()
            if exc is not None:
                action["_fail"] = {"code": "action_failed", "message": str(exc) or type(exc).__name__}
            elif isinstance(job.result(), dict):
                action["_params"].update(job.result())
        return False

    def _fail_broken(self, ident: int, now: float) -> None:
        """Mark an action whose handlers raised as failed (state was rolled back)."""
        action = self.store.get("action", ident)
        if action is None or action["status"] != "running":
            return
        with self.store.transaction():
            action["status"] = "error"
            action["error"] = {"code": "server_error", "message": "internal error while finishing the action"}
            action["progress"] = 100
            action["finished"] = iso(max(now, float(action["_due"])))
            self.store.put("action", action)

    def _finish(self, action: Doc) -> None:
        now = max(self.clock(), float(action["_due"]))
        failure = action.get("_fail")
        rate = self.failing.get(action["command"], 0.0)
        if failure is None and rate > 0 and self.rng.random() < rate:
            failure = {"code": "action_failed", "message": f"{action['command']} failed (injected fault)"}
        parent = self.store.get("action", action["_after"]) if action.get("_after") is not None else None
        if failure is None and parent is not None and parent["status"] == "error":
            failure = {"code": "action_failed",
                       "message": f"{action['command']} was not run: {parent['command']} failed"}
        handler_name = action.get("_finish")
        if failure is None and handler_name:
            try:
                _COMPLETIONS[handler_name](self.store, action, action["_params"])
            except errors.ApiError as exc:
                failure = {"code": exc.code, "message": exc.message}
        if failure is not None:
            if handler_name and handler_name in _FAILURES:
                _FAILURES[handler_name](self.store, action, action["_params"])
            action["status"] = "error"
            action["error"] = failure
        else:
            action["status"] = "success"
        action["progress"] = 100
        action["finished"] = iso(now)
        self.store.put("action", action)

    def is_locked(self, rtype: str, rid: int) -> bool:
        """True while a running action targets the resource (the API then answers ``locked``)."""
        now = self.clock()
        for _, ident in self._due:
            action = self.store.get("action", ident)
            if action is None or action["status"] != "running" or action["_t0"] > now:
                continue
            for res in action["resources"]:
                if res["type"] == rtype and res["id"] == rid:
                    return True
        return False

    def reset(self) -> None:
        self._due.clear()
        self.jobs.clear()

    def render(self, action: Doc) -> Doc:
        """The action as the API shows it (progress computed from the clock)."""
        out = {k: v for k, v in action.items() if not k.startswith("_")}
        if action["status"] == "running":
            t0, due = float(action["_t0"]), float(action["_due"])
            now = self.clock()
            span = max(due - t0, 1e-9)
            out["progress"] = max(0, min(99, int((now - t0) / span * 100)))
        return out
