"""Routes of the v1 API: ``@route("GET", "/servers/{id}")`` registers a handler.

A handler takes a :class:`Request` and returns a :class:`Reply`. Literal path segments
win over parameters, so ``/servers/actions`` is never read as a server id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from localcloud import errors
from localcloud.reply import Reply as Reply  # (handlers import it from here)

if TYPE_CHECKING:
    from localcloud.cloud import Cloud


@dataclass
class Request:
    cloud: Cloud
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any

    def q(self, key: str) -> str | None:
        values = self.query.get(key)
        return values[-1] if values else None

    def q_all(self, key: str) -> list[str]:
        return self.query.get(key, [])

    def id(self, key: str = "id") -> int:
        """A numeric path parameter; anything else is not found, as on the real API."""
        raw = self.params[key]
        if not (raw.isascii() and raw.isdigit()):
            raise errors.not_found()
        return int(raw)


Handler = Callable[[Request], Reply]


@dataclass
class Route:
    method: str
    pattern: str
    segments: tuple[str, ...]
    handler: Handler

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for seg, part in zip(self.segments, parts, strict=True):
            if seg.startswith("{"):
                if not part:
                    return None
                params[seg[1:-1]] = part
            elif seg != part:
                return None
        return params

    @property
    def literal_count(self) -> int:
        return sum(1 for s in self.segments if not s.startswith("{"))


ROUTES: list[Route] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ROUTES.append(Route(method, pattern, tuple(pattern.strip("/").split("/")), fn))
        # most literal segments first, then the leftmost literal: /servers/actions/{id} before /servers/{id}/...
        ROUTES.sort(key=lambda r: (-r.literal_count, tuple(s.startswith("{") for s in r.segments)))
        return fn

    return register


# Candidates per (segment count, first segment), in ROUTES order; rebuilt when ROUTES changes.
_index: dict[tuple[int, str], list[Route]] = {}
_param_first: dict[int, list[Route]] = {}
_indexed: tuple[int, ...] = ()


def _candidates(parts: list[str]) -> list[Route]:
    global _indexed
    signature = tuple(map(id, ROUTES))
    if signature != _indexed:
        _index.clear()
        _param_first.clear()
        keys = {(len(r.segments), r.segments[0]) for r in ROUTES if not r.segments[0].startswith("{")}
        for key in keys:
            _index[key] = [r for r in ROUTES if len(r.segments) == key[0]
                           and (r.segments[0] == key[1] or r.segments[0].startswith("{"))]
        for r in ROUTES:
            if r.segments[0].startswith("{"):
                _param_first.setdefault(len(r.segments), []).append(r)
        _indexed = signature
    found = _index.get((len(parts), parts[0]))
    return found if found is not None else _param_first.get(len(parts), [])


def resolve(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """Find the route for a path below /v1; not_found or method_not_allowed otherwise."""
    parts = path.strip("/").split("/")
    allowed = False
    for candidate in _candidates(parts):
        params = candidate.match(parts)
        if params is None:
            continue
        if candidate.method == method:
            return candidate, params
        allowed = True
    if allowed:
        raise errors.ApiError("method_not_allowed", f"method {method} is not allowed for {path}")
    raise errors.not_found("endpoint")
