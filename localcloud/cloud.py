"""The cloud: state, actions, catalogue, limits, rate limit and faults, plus the helpers
every resource family uses (look-ups, protection, locks, limits, action replies)."""

from __future__ import annotations

import dataclasses
import random
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from localcloud import errors
from localcloud.actions import ActionEngine
from localcloud.config import Settings
from localcloud.faults import Faults, parse
from localcloud.machines import Machines, NoMachines
from localcloud.products import Products
from localcloud.ratelimit import RateLimiter
from localcloud.reply import Reply
from localcloud.store import Doc, Store

REQUEST_LOG_SIZE = 200_000


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class Cloud:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # what the side door's reset returns to (the side door's config changes settings)
        self.initial = dataclasses.replace(settings, limits=dict(settings.limits))
        path = None
        if settings.state_dir is not None:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            path = settings.state_dir / "localcloud.sqlite3"
        self.store = Store(path)
        self.engine = ActionEngine(self.store, settings.profile, settings.time_scale)
        self.products = Products.load()
        self.limits = dict(settings.limits)
        self.ratelimit = RateLimiter(settings.rate_limit)
        self.rng = random.Random(settings.seed)
        self.engine.rng = self.rng
        self.faults: Faults = parse(settings.faults)
        self.engine.failing = self.faults.actions
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.request_seq = 0
        self.started = time.time()
        # what the API tells to make things real: nothing (--hosts none) or real machines
        # (--hosts nspawn: cli hands it localcloud.hosts.jobs.NspawnMachines)
        self.machines: Machines = NoMachines()
        # the Object Storage stand-in's endpoint, CA file and credentials (localcloud/objectstorage.py)
        self.objectstorage: dict[str, str] | None = None

    def restore_config(self) -> None:
        """Back to the configuration localcloud started with (rate limit, limits, timing)."""
        init = self.initial
        self.settings.rate_limit, self.settings.time_scale, self.settings.profile = (
            init.rate_limit, init.time_scale, init.profile)
        self.ratelimit.configure(init.rate_limit)
        self.limits.clear()
        self.limits.update(init.limits)
        self.engine.time_scale = init.time_scale
        self.engine.profile = init.profile

    # -- faults ---------------------------------------------------------------------------
    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.engine.failing = faults.actions

    # -- look-ups -------------------------------------------------------------------------
    def get(self, kind: str, ident: int, what: str | None = None) -> Doc:
        doc = self.store.get(kind, ident)
        if doc is None:
            raise errors.not_found(what or kind.replace("_", " "))
        return doc

    def find_by_name(self, kind: str, name: str) -> Doc | None:
        for doc in self.store.all(kind):
            if doc.get("name") == name:
                return doc
        return None

    def ref(self, kind: str, ref: int | str, field: str) -> Doc:
        """Resolve an id-or-name reference in a request body (invalid_input when unknown)."""
        doc = None
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isascii() and ref.isdigit()):
            doc = self.store.get(kind, int(ref))
        if doc is None and isinstance(ref, str):
            doc = self.find_by_name(kind, ref)
        if doc is None:
            raise errors.invalid_field(field, f"{kind.replace('_', ' ')} {ref} not found")
        return doc

    # -- guards ---------------------------------------------------------------------------
    def ensure_unlocked(self, kind: str, ident: int) -> None:
        if self.engine.is_locked(kind, ident):
            raise errors.locked(f"{kind.replace('_', ' ')} {ident} is locked by a running action")

    def ensure_deletable(self, kind: str, doc: Doc) -> None:
        if (doc.get("protection") or {}).get("delete"):
            raise errors.protected(f"{kind.replace('_', ' ')} {doc['id']} is delete-protected")

    def ensure_limit(self, limit: str, kind: str, adding: int = 1) -> None:
        cap = self.limits.get(limit)
        if cap is not None and self.store.count(kind) + adding > cap:
            raise errors.resource_limit_exceeded(limit, f"project limit exceeded: at most {cap} {limit}")

    def ensure_unique_name(self, kind: str, name: str, except_id: int | None = None) -> None:
        existing = self.find_by_name(kind, name)
        if existing is not None and existing["id"] != except_id:
            raise errors.uniqueness_error("name", f"name is already used by {kind.replace('_', ' ')}"
                                                  f" {existing['id']}")

    # -- replies --------------------------------------------------------------------------
    def action(self, action: Doc) -> Doc:
        return self.engine.render(action)

    def action_reply(self, action: Doc, status: int = 201) -> Reply:
        return Reply(status, {"action": self.action(action)})
