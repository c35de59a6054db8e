"""Durable state: one SQLite file in the state directory, mirrored in memory.

Every resource is a JSON document keyed by (kind, id). Reads come from memory; each
request runs inside :meth:`Store.transaction`, which writes the documents it touched to
SQLite in one commit, or restores them from SQLite when the request fails, so a failed
request leaves nothing half-changed. Separate client processes share one cloud through
the single server process, and the cloud survives a restart.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Doc = dict[str, Any]

# First id per kind, so ids look like the real API's (action ids exceed 2**32 there).
_ID_BASE: dict[str, int] = {
    "action": 4_300_000_000,
    "server": 50_000_000,
    "volume": 100_000_000,
    "image": 300_000_000,
    "primary_ip": 70_000_000,
    "network": 10_000_000,
    "firewall": 1_500_000,
    "load_balancer": 2_000_000,
    "ssh_key": 20_000_000,
    "placement_group": 400_000,
    "certificate": 800_000,
    "floating_ip": 60_000_000,
}


class Store:
    """In-memory documents with write-through to SQLite (or memory only when path is None)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS docs (kind TEXT NOT NULL, id INTEGER NOT NULL, data TEXT NOT NULL,"
            " PRIMARY KEY (kind, id))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS counters (kind TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()
        self._docs: dict[str, dict[int, Doc]] = {}
        self._counters: dict[str, int] = {}
        self._dirty: set[tuple[str, int]] = set()
        self._dirty_counters: set[str] = set()
        self._read: set[tuple[str, int]] = set()  # docs handed out inside the open transaction
        self._listed: set[str] = set()  # kinds listed inside the open transaction
        self._depth = 0
        self._load()

    def _load(self) -> None:
        self._docs.clear()
        for kind, ident, data in self._db.execute("SELECT kind, id, data FROM docs"):
            self._docs.setdefault(kind, {})[int(ident)] = json.loads(data)
        self._counters = {k: int(v) for k, v in self._db.execute("SELECT kind, value FROM counters")}

    # -- reads ---------------------------------------------------------------------------
    def get(self, kind: str, ident: int) -> Doc | None:
        doc = self._docs.get(kind, {}).get(ident)
        if doc is not None and self._depth:
            self._read.add((kind, ident))
        return doc

    def all(self, kind: str) -> list[Doc]:
        """Documents of one kind, in id order."""
        if self._depth:
            self._listed.add(kind)
        table = self._docs.get(kind, {})
        return [table[i] for i in sorted(table)]

    def count(self, kind: str) -> int:
        return len(self._docs.get(kind, {}))

    # -- writes --------------------------------------------------------------------------
    def next_id(self, kind: str) -> int:
        value = self._counters.get(kind, _ID_BASE.get(kind, 1_000)) + 1
        self._counters[kind] = value
        self._dirty_counters.add(kind)
        return value

    def put(self, kind: str, doc: Doc) -> Doc:
        """Insert or replace a document (it must carry an integer ``id``)."""
        ident = int(doc["id"])
        self._docs.setdefault(kind, {})[ident] = doc
        self._dirty.add((kind, ident))
        self._flush_if_outside_transaction()
        return doc

    def touch(self, kind: str, doc: Doc) -> None:
        """Mark a document changed in place."""
        self.put(kind, doc)

    def delete(self, kind: str, ident: int) -> None:
        self._docs.get(kind, {}).pop(ident, None)
        self._dirty.add((kind, ident))
        self._flush_if_outside_transaction()

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        with self.lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
            self._db.commit()

    # -- transactions --------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit what the block changed, or restore it from disk when the block raises.

        The restore covers documents changed with put()/delete() and also every document
        the block read (get(), all()), so a handler that changed a document in place and then
        failed leaves memory equal to disk.
        """
        with self.lock:
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._rollback()
                raise
            self._depth -= 1
            if self._depth == 0:
                self._commit()

    def _flush_if_outside_transaction(self) -> None:
        if self._depth == 0:
            with self.lock:
                self._commit()

    def _commit(self) -> None:
        """Flush; when that fails (a document that is not JSON, a disk error) undo it all."""
        try:
            self._flush()
        except BaseException:
            self._db.rollback()
            self._rollback()
            raise
        self._read.clear()
        self._listed.clear()

    def _flush(self) -> None:
        if not self._dirty and not self._dirty_counters:
            return
        cur = self._db.cursor()
        for kind, ident in self._dirty:
            doc = self._docs.get(kind, {}).get(ident)
            if doc is None:
                cur.execute("DELETE FROM docs WHERE kind=? AND id=?", (kind, ident))
            else:
                cur.execute(
                    "INSERT OR REPLACE INTO docs (kind, id, data) VALUES (?, ?, ?)",
                    (kind, ident, json.dumps(doc, separators=(",", ":"))),
                )
        for kind in self._dirty_counters:
            cur.execute("INSERT OR REPLACE INTO counters (kind, value) VALUES (?, ?)", (kind, self._counters[kind]))
        self._db.commit()
        self._dirty.clear()
        self._dirty_counters.clear()

    def _rollback(self) -> None:
        for kind in self._listed:
            self._docs[kind] = {int(i): json.loads(d) for i, d in
                                self._db.execute("SELECT id, data FROM docs WHERE kind=?", (kind,))}
        for kind, ident in self._dirty | self._read:
            if kind in self._listed:
                continue
            row = self._db.execute("SELECT data FROM docs WHERE kind=? AND id=?", (kind, ident)).fetchone()
            if row is None:
                self._docs.get(kind, {}).pop(ident, None)
            else:
                self._docs.setdefault(kind, {})[ident] = json.loads(row[0])
        for kind in self._dirty_counters:
            row = self._db.execute("SELECT value FROM counters WHERE kind=?", (kind,)).fetchone()
            if row is None:
                self._counters.pop(kind, None)
            else:
                self._counters[kind] = int(row[0])
        self._dirty.clear()
        self._dirty_counters.clear()
        self._read.clear()
        self._listed.clear()

    def snapshot(self, kind: str, ident: int) -> Doc | None:
        """A deep copy, for handlers that compare before and after."""
        doc = self.get(kind, ident)
        return copy.deepcopy(doc) if doc is not None else None

    def reset(self) -> None:
        """Forget every resource (the side door's reset)."""
        with self.lock:
            self._db.execute("DELETE FROM docs")
            self._db.execute("DELETE FROM counters")
            self._db.commit()
            self._docs.clear()
            self._counters.clear()
            self._dirty.clear()
            self._dirty_counters.clear()
            self._read.clear()
            self._listed.clear()

    def close(self) -> None:
        with self.lock:
            self._flush()
            self._db.close()
