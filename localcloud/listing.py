"""List endpoints: name and label-selector filters, sort, and pagination.

``meta.pagination`` carries exactly the six keys the spec lists: hcloud-python builds
its Meta object from them and raises on any extra key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from localcloud import errors
from localcloud.labels import parse_selector
from localcloud.router import Reply, Request

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 50


def _int_param(req: Request, key: str, default: int) -> int:
    raw = req.q(key)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise errors.invalid_field(key, "must be a positive integer")
    return int(raw)


def filter_common(req: Request, items: Iterable[dict[str, Any]], *, by_name: bool = True,
                  by_labels: bool = True) -> list[dict[str, Any]]:
    """Apply ``name`` and ``label_selector`` query filters."""
    out = list(items)
    if by_name and (name := req.q("name")) is not None:
        out = [i for i in out if i.get("name") == name]
    if by_labels and (text := req.q("label_selector")) is not None and text.strip():  # blank: no filter
        selector = parse_selector(text)
        out = [i for i in out if selector.matches(i.get("labels") or {})]
    return out


def sort_items(req: Request, items: list[dict[str, Any]], allowed: tuple[str, ...],
               key_of: Callable[[dict[str, Any], str], Any] | None = None) -> list[dict[str, Any]]:
    """Sort by ``sort=field[:asc|:desc]`` (repeatable); id ascending otherwise."""
    specs = req.q_all("sort")
    items = sorted(items, key=lambda i: i.get("id", 0))
    parsed: list[tuple[str, bool]] = []
    for spec in specs:
        field, _, direction = spec.partition(":")
        if field not in allowed or direction not in ("", "asc", "desc"):
            raise errors.invalid_field("sort", f"invalid sort '{spec}'; allowed: {', '.join(allowed)}")
        parsed.append((field, direction == "desc"))
    getter: Callable[[dict[str, Any], str], Any] = key_of or _plain_field
    for field, desc in reversed(parsed):  # stable sort, last key first
        items.sort(key=lambda i, f=field: _sortable(getter(i, f)), reverse=desc)  # type: ignore[misc]
    return items


def _plain_field(item: dict[str, Any], field: str) -> Any:
    return item.get(field)


def _sortable(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def page(req: Request, key: str, items: list[dict[str, Any]]) -> Reply:
    """One page of ``items`` under ``key`` with meta.pagination and a Link header."""
    number = _int_param(req, "page", 1)
    per_page = min(_int_param(req, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
    total = len(items)
    last = max(1, -(-total // per_page))
    chunk = items[(number - 1) * per_page: number * per_page]
    meta = {
        "pagination": {
            "page": number,
            "per_page": per_page,
            "previous_page": number - 1 if number > 1 else None,
            "next_page": number + 1 if number < last else None,
            "last_page": last,
            "total_entries": total,
        }
    }
    links = []
    kept = "".join(f"{quote(k)}={quote(v)}&" for k, values in req.query.items() if k not in ("page", "per_page")
                   for v in values)
    base = f"/v1{req.path}?{kept}per_page={per_page}&page="
    if number > 1:
        links.append(f'<{base}{number - 1}>; rel="prev"')
    if number < last:
        links.append(f'<{base}{number + 1}>; rel="next"')
    links.append(f'<{base}{last}>; rel="last"')
    return Reply(200, {key: chunk, "meta": meta}, {"Link": ", ".join(links)})
