"""Hypothesis strategies for request bodies, read from the request schemas of Hetzner's OpenAPI
document: bodies the schema accepts, and bodies made from them that it rejects.

The request schemas use a small part of JSON Schema (type, also with ``null``; properties,
required, additionalProperties; enum; minLength/maxLength, pattern; minimum/maximum; items,
maxItems; allOf, oneOf), so the strategies are written here: hypothesis-jsonschema 0.23.1, the
last release, fails on current hypothesis. Generation needs no precision: every body is
classified by the spec's own validator (tests/spec.py) before its answer is judged.

Valid bodies start from hints (a body known to work on real resources, the schema's
``example`` and ``default``) and fall back to anything the schema allows. Invalid bodies take
a valid one and break it at one place, chosen among every place the schema constrains:
:data:`KINDS` names the ways.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft202012Validator

INT64 = (-(2**63), 2**63 - 1)
NO_HINT: Any = object()
# The ways an invalid body is made; each place in a body offers the ones its schema allows.
KINDS = ("not an object", "wrong type", "null", "missing required", "unknown key", "out of range",
         "not in enum", "too long", "too short", "pattern", "too many items")
JSON_TYPES = ("string", "integer", "number", "boolean", "array", "object")


def merged(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its allOf parts folded in (properties and required united)."""
    if "allOf" not in schema:
        return schema
    out = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        part = merged(part)
        for key, value in part.items():
            if key == "properties":
                out["properties"] = {**out.get("properties", {}), **value}
            elif key == "required":
                out["required"] = sorted({*out.get("required", []), *value})
            else:
                out.setdefault(key, value)
    return out


def types(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return set(kind)
    if isinstance(kind, str):
        return {kind}
    if "properties" in schema or "additionalProperties" in schema:
        return {"object"}
    if "enum" in schema:
        return {_json_type(v) for v in schema["enum"]}
    return set()  # anything (a oneOf, or no constraint)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _fits(schema: dict[str, Any], value: Any) -> bool:
    return bool(Draft202012Validator(schema).is_valid(value))


def _hints(schema: dict[str, Any], hint: Any) -> list[Any]:
    found = [hint] if hint is not NO_HINT else []
    found += [schema[k] for k in ("example", "default") if k in schema]
    return [h for h in found if _fits(schema, h)]


def valid(schema: dict[str, Any], hint: Any = NO_HINT) -> st.SearchStrategy[Any]:
    """Values the schema accepts (mostly: the spec's validator has the last word)."""
    schema = merged(schema)
    hinted = _hints(schema, hint)
    if "oneOf" in schema:
        generic: st.SearchStrategy[Any] = st.one_of([valid(branch, hint) for branch in schema["oneOf"]])
    elif "enum" in schema:
        generic = st.sampled_from(schema["enum"])
        if "null" in types(schema) and None not in schema["enum"]:
            generic = st.one_of(generic, st.none())
    else:
        kinds = sorted(types(schema)) or ["string", "integer", "boolean"]
        generic = st.one_of([_valid_of_type(schema, kind, hint) for kind in kinds])
    return st.one_of(st.sampled_from(hinted), generic) if hinted else generic


def _valid_of_type(schema: dict[str, Any], kind: str, hint: Any) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum", INT64[0]), schema.get("maximum", INT64[1]))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "string":
        low, high = schema.get("minLength", 0), min(schema.get("maxLength", 24), 24)
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: low <= len(s) <= high)
        return st.text(min_size=low, max_size=max(low, high))
    if kind == "array":
        item_hint = hint[0] if isinstance(hint, list) and hint else NO_HINT
        return st.lists(valid(schema.get("items", {}), item_hint), min_size=schema.get("minItems", 0),
                        max_size=min(schema.get("maxItems", 3), 3))
    # an object: its required keys, any of the others, and free keys where it is open
    props: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    hints = hint if isinstance(hint, dict) else {}
    fixed = {k: valid(s, hints.get(k, NO_HINT)) for k, s in props.items() if k in required}
    optional = {k: valid(s, hints.get(k, NO_HINT)) for k, s in props.items() if k not in required}
    objects = st.fixed_dictionaries(fixed, optional=optional)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and not props:  # a map such as labels
        return st.dictionaries(st.text(max_size=12), valid(extra), max_size=3)
    return objects


@dataclass(frozen=True)
class Site:
    """One way to break a body: at ``path`` set a value drawn from ``values`` (None: delete)."""

    path: tuple[Any, ...]
    kind: str
    values: st.SearchStrategy[Any] | None


# A value of each JSON type, for "wrong type" (integers that are also numbers are not wrong there).
_OF_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=8),
    "integer": st.integers(-(2**70), 2**70),
    "number": st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    "boolean": st.booleans(),
    "array": st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=4)), max_size=2),
    "object": st.dictionaries(st.text(max_size=6), st.one_of(st.none(), st.integers()), max_size=2),
}


def sites(schema: dict[str, Any], value: Any, path: tuple[Any, ...] = ()) -> Iterator[Site]:
    """Every place in ``value`` (valid for ``schema``) and every way to break it there."""
    schema = merged(schema)
    if "oneOf" in schema:  # break it within the branch it belongs to
        for branch in schema["oneOf"]:
            if _fits(branch, value):
                yield from sites(branch, value, path)
                return
        return
    allowed = types(schema)
    if not path:
        yield Site(path, "not an object", st.sampled_from([None, [], [value], "x", 1, 1.5, True, False]))
    elif allowed:
        wrong = [_OF_TYPE[t] for t in JSON_TYPES if t not in allowed and not (t == "integer" and "number" in allowed)]
        yield Site(path, "wrong type", st.one_of(wrong))
        if "null" not in allowed:
            yield Site(path, "null", st.none())
    yield from _constraint_sites(schema, path)
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for key in schema.get("required", []):
            if key in value:
                yield Site((*path, key), "missing required", None)
        extra = schema.get("additionalProperties")
        if extra is False:
            yield Site((*path, st.text(min_size=1, max_size=12).filter(lambda k: k not in props)), "unknown key",
                       st.one_of(st.none(), st.integers(), st.text(max_size=4)))
        for key, inner in value.items():
            if key in props:
                yield from sites(props[key], inner, (*path, key))
            elif isinstance(extra, dict):
                yield from sites(extra, inner, (*path, key))
    elif isinstance(value, list) and value:
        yield from sites(schema.get("items", {}), value[0], (*path, 0))


def _constraint_sites(schema: dict[str, Any], path: tuple[Any, ...]) -> Iterator[Site]:
    allowed = types(schema)
    if "enum" in schema and "string" in allowed:
        enum = schema["enum"]
        near = st.sampled_from([e.upper() + "x" for e in enum if isinstance(e, str)])
        yield Site(path, "not in enum", st.one_of(near, st.text(max_size=8)).filter(lambda s: s not in enum))
    if "integer" in allowed or "number" in allowed:
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None:
            yield Site(path, "out of range", st.integers(INT64[0], low - 1) if "integer" in allowed
                       else st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False))
        if high is not None:
            yield Site(path, "out of range", st.integers(high + 1, INT64[1]) if "integer" in allowed
                       else st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False))
        if "integer" in allowed and schema.get("format") == "int64":
            yield Site(path, "out of range", st.sampled_from([2**63, -(2**63) - 1, 2**64]))
    if "string" in allowed and "enum" not in schema:
        if "maxLength" in schema:
            most = schema["maxLength"]
            yield Site(path, "too long", st.text(alphabet="abc-", min_size=most + 1, max_size=most + 8))
        if schema.get("minLength", 0) > 0:
            yield Site(path, "too short", st.text(alphabet="ab", max_size=schema["minLength"] - 1))
        if "pattern" in schema:
            pattern = re.compile(schema["pattern"])
            yield Site(path, "pattern", st.sampled_from([" ", " x", "x ", "\tname", "a\n"]).filter(
                lambda s: not pattern.search(s)))
    if "array" in allowed and "maxItems" in schema:
        yield Site(path, "too many items", st.integers(schema["maxItems"] + 1, schema["maxItems"] + 3))


@st.composite
def invalid(draw: st.DrawFn, schema: dict[str, Any], base: st.SearchStrategy[Any]) -> tuple[str, Any]:
    """(kind, body): a valid body broken at one place (the spec's validator confirms it)."""
    body = draw(base)
    site = draw(st.sampled_from(list(sites(schema, body))))
    return site.kind, broken(draw, body, site)


def broken(draw: st.DrawFn, body: Any, site: Site) -> Any:
    if not site.path:
        assert site.values is not None
        return draw(site.values)
    out = copy.deepcopy(body)
    target = out
    *parents, last = site.path
    for part in parents:
        target = target[part]
    if isinstance(last, st.SearchStrategy):  # an unknown key
        last = draw(last)
    if site.values is None:
        del target[last]
    elif site.kind == "too many items":
        target[last] = [copy.deepcopy(target[last][0]) if target[last] else None] * draw(site.values)
    else:
        target[last] = draw(site.values)
    return out
