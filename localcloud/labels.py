"""Labels and label selectors, as the spec's "Labels" and "Label Selector" sections define them."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from localcloud import errors

_NAME = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?$")
_VALUE = re.compile(r"^([a-zA-Z0-9]([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def key_problem(key: str, allow_reserved: bool = False) -> str | None:
    """Why a label key is invalid, or None (``allow_reserved``: selectors may name hetzner.cloud/ keys)."""
    prefix, slash, name = key.rpartition("/")
    if "/" in prefix:
        return "label key may contain at most one '/'"
    if slash and not prefix:
        return "label key prefix must be a DNS subdomain (nothing before '/')"
    if not _NAME.fullmatch(name):
        return "label key name must be 1-63 characters, alphanumeric at both ends, with - _ . between"
    if prefix:
        if len(prefix) > 253 or not all(_DNS_LABEL.fullmatch(p) for p in prefix.split(".")):
            return "label key prefix must be a DNS subdomain"
        if not allow_reserved and (prefix == "hetzner.cloud" or prefix.endswith(".hetzner.cloud")):
            return "label key prefix hetzner.cloud/ is reserved"
    return None


def value_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "label value must be a string"
    if not _VALUE.fullmatch(value):
        return "label value must be empty or 1-63 characters, alphanumeric at both ends, with - _ . between"
    return None


def validate_labels(labels: object, field: str = "labels") -> dict[str, str]:
    """Return the labels or raise invalid_input naming the offending field."""
    if not isinstance(labels, dict):
        raise errors.invalid_field(field, "must be an object of string keys and values")
    problems: dict[str, list[str]] = {}
    for key, value in labels.items():
        why = key_problem(str(key)) or value_problem(value)
        if why:
            problems.setdefault(field, []).append(f"{key}: {why}")
    if problems:
        raise errors.invalid_input(problems)
    return {str(k): str(v) for k, v in labels.items()}


# -- selectors ------------------------------------------------------------------------------
Predicate = Callable[[dict[str, str]], bool]


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "exists", "!exists", "in", "notin"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "=":
            return labels.get(self.key) == self.values[0]
        if self.op == "!=":
            return labels.get(self.key) != self.values[0]
        if self.op == "in":
            return self.key in labels and labels[self.key] in self.values
        return labels.get(self.key) not in self.values  # notin


_TOKEN = re.compile(r"\s*(?:(?P<set>[^,\s!=()]+\s+(?:in|notin)\s*\([^)]*\))|(?P<plain>[^,]+))\s*(?:,|$)")
_SET = re.compile(r"^(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s*\((?P<vals>[^)]*)\)$")
_EQ = re.compile(r"^(?P<key>[^\s!=()]+)\s*(?P<op>==|=|!=)\s*(?P<val>[^\s!=(),]*)$")
_EXISTS = re.compile(r"^(?P<neg>!)?\s*(?P<key>[^\s!=(),]+)$")


@dataclass(frozen=True)
class Selector:
    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: dict[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def parse_selector(text: str, field: str = "label_selector") -> Selector:
    """Parse ``k==v,k!=v,k,!k,k in (a,b),k notin (a,b)``; raise invalid_input on bad syntax."""
    reqs: list[Requirement] = []
    pos = 0
    text_stripped = text.strip()
    if not text_stripped:
        raise errors.invalid_field(field, "label selector must not be empty")
    while pos < len(text_stripped):
        m = _TOKEN.match(text_stripped, pos)
        if not m or m.end() == pos:
            raise errors.invalid_field(field, f"cannot parse label selector at '{text_stripped[pos:]}'")
        pos = m.end()
        part = (m.group("set") or m.group("plain") or "").strip()
        reqs.append(_requirement(part, field))
    if text_stripped.endswith(","):
        raise errors.invalid_field(field, "label selector must not end with ','")
    return Selector(text, tuple(reqs))


def _requirement(part: str, field: str) -> Requirement:
    if m := _SET.match(part):
        values = tuple(v.strip() for v in m.group("vals").split(",") if v.strip())
        if not values:
            raise errors.invalid_field(field, f"'{part}': set must hold at least one value")
        _check_key(m.group("key"), field)
        if any(value_problem(v) for v in values):
            raise errors.invalid_field(field, f"'{part}': invalid label value")
        return Requirement(m.group("key"), m.group("op"), values)
    if m := _EQ.match(part):
        _check_key(m.group("key"), field)
        if value_problem(m.group("val")):
            raise errors.invalid_field(field, f"'{part}': invalid label value")
        op = "!=" if m.group("op") == "!=" else "="
        return Requirement(m.group("key"), op, (m.group("val"),))
    if m := _EXISTS.match(part):
        _check_key(m.group("key"), field)
        return Requirement(m.group("key"), "!exists" if m.group("neg") else "exists")
    raise errors.invalid_field(field, f"cannot parse label selector requirement '{part}'")


def _check_key(key: str, field: str) -> None:
    if key_problem(key, allow_reserved=True):
        raise errors.invalid_field(field, f"'{key}': invalid label key")
