"""Fault injection: errors, latency, dropped connections, failing actions, sold-out types.

Faults are one JSON document, given at start (``--faults JSON`` or ``--faults @file``) and
read or replaced at run time through ``/_localcloud/faults``::

    {
      "errors":  [{"method": "POST", "path": "/servers", "code": "conflict", "rate": 1.0, "times": 2}],
      "latency": [{"method": "*", "path": "/servers*", "seconds": 0.2}],
      "drops":   [{"method": "GET", "path": "/actions*", "rate": 0.1},
                  {"method": "POST", "path": "/servers", "times": 1, "after": true}],
      "actions": {"create_server": 0.5},
      "unavailable": [{"server_type": "cx23", "location": "fsn1"}],
      "apt":     [{"fault": "error", "rate": 0.1, "status": 503},
                  {"fault": "cut", "rate": 0.1, "path": "*.deb"},
                  {"fault": "stall", "rate": 0.05, "seconds": 30}]
    }

``path`` is a glob on the path below /v1; ``rate`` is a probability (default 1);
``times`` (optional) stops a rule after it fired that often, for deterministic tests.
A drop closes the connection before the request is handled (nothing happened); with
``"after": true`` it closes it after the request was handled and committed, so the reply
is lost but the change was made (a create the client must find and adopt).

``apt`` rules act on the machines' requests to the apt proxy (``--hosts nspawn``, see
``localcloud/hosts/aptfront.py``), never on localcloud's own (the template build). They are
tried in order and the first that fires wins: ``error`` answers ``status`` (5xx, default
503) without asking the mirror, ``stall`` answers nothing for ``seconds`` (default 30) and
closes, ``cut`` sends the headers and part of the body, then resets the connection. ``path``
is a glob on the requested URL's path (``/debian/dists/bookworm/InRelease``).
"""

from __future__ import annotations

import fnmatch
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from localcloud.errors import STATUS_BY_CODE


class FaultSpecError(ValueError):
    """A fault document that cannot be used; the message says what is wrong."""


@dataclass
class Rule:
    path: str = "*"
    method: str = "*"
    rate: float = 1.0
    times: int | None = None
    code: str = ""
    seconds: float = 0.0
    after: bool = False  # drops only: handle the request, then drop the reply
    fired: int = 0

    def applies(self, method: str, path: str, rng: random.Random) -> bool:
        if self.method not in ("*", method):
            return False
        if not fnmatch.fnmatchcase(path, self.path):
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        if self.rate < 1.0 and rng.random() >= self.rate:
            return False
        self.fired += 1
        return True


APT_FAULTS = ("error", "stall", "cut")


@dataclass
class AptRule:
    """A fault of the apt proxy: a share of the machines' package requests fail."""

    fault: str = "error"
    path: str = "*"
    rate: float = 1.0
    times: int | None = None
    status: int = 503  # error only
    seconds: float = 30.0  # stall only
    fired: int = 0

    def applies(self, path: str, rng: random.Random) -> bool:
        if not fnmatch.fnmatchcase(path, self.path):
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        if self.rate < 1.0 and rng.random() >= self.rate:
            return False
        self.fired += 1
        return True


@dataclass
class Faults:
    errors: list[Rule] = field(default_factory=list)
    latency: list[Rule] = field(default_factory=list)
    drops: list[Rule] = field(default_factory=list)
    actions: dict[str, float] = field(default_factory=dict)
    unavailable: list[dict[str, str]] = field(default_factory=list)
    apt: list[AptRule] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "errors": [_rule_json(r, "code") for r in self.errors],
            "latency": [_rule_json(r, "seconds") for r in self.latency],
            "drops": [_rule_json(r, "after") for r in self.drops],
            "actions": dict(self.actions),
            "unavailable": list(self.unavailable),
            "apt": [_apt_json(r) for r in self.apt],
        }

    def is_unavailable(self, kind: str, name: str, location: str) -> bool:
        return any(u.get(kind) == name and u.get("location", location) == location for u in self.unavailable)


def _rule_json(rule: Rule, extra: str | None) -> dict[str, Any]:
    data = asdict(rule)
    keep = {"path", "method", "rate", "times", "fired"}
    if extra:
        keep.add(extra)
    return {k: v for k, v in data.items() if k in keep}


def _apt_json(rule: AptRule) -> dict[str, Any]:
    data = asdict(rule)
    extra = {"error": "status", "stall": "seconds"}.get(rule.fault)
    return {k: v for k, v in data.items() if k in {"fault", "path", "rate", "times", "fired"} or k == extra}


def parse(spec: str | dict[str, Any] | None) -> Faults:
    """Read a fault document (JSON text, ``@path`` or a dict); FaultSpecError when invalid."""
    if spec is None or spec == "":
        return Faults()
    if isinstance(spec, str):
        if spec.startswith("@"):
            try:
                text = Path(spec[1:]).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise FaultSpecError(f"cannot read fault file {spec[1:]!r}: {exc}") from exc
        else:
            text = spec
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise FaultSpecError(f"faults are not valid JSON: {str(exc)[:120]}") from None
    else:
        data = spec
    if not isinstance(data, dict):
        raise FaultSpecError("faults must be a JSON object")
    unknown = set(data) - {"errors", "latency", "drops", "actions", "unavailable", "apt"}
    if unknown:
        raise FaultSpecError(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    faults = Faults(
        errors=[_rule(r, "errors") for r in _list(data, "errors")],
        latency=[_rule(r, "latency") for r in _list(data, "latency")],
        drops=[_rule(r, "drops") for r in _list(data, "drops")],
        actions=_actions(data.get("actions")),
        unavailable=[_unavailable(u) for u in _list(data, "unavailable")],
        apt=[_apt_rule(r) for r in _list(data, "apt")],
    )
    for rule in faults.errors:
        if rule.code not in STATUS_BY_CODE:
            raise FaultSpecError(f"unknown error code in faults: {rule.code!r}")
    return faults


def _int(value: Any, name: str, kind: str) -> int:
    """A count from a fault document: an integer (2.0 is 2), never a bool, a fraction or infinity."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultSpecError(f"bad value in {kind} rule: {name} must be a whole number")
    if isinstance(value, float) and not (value.is_integer() and abs(value) < 2 ** 53):
        raise FaultSpecError(f"bad value in {kind} rule: {name} must be a whole number below 2**53")
    return int(value)


def _float(value: Any, name: str, kind: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultSpecError(f"bad value in {kind} rule: {name} must be a number")
    try:
        result = float(value)
    except OverflowError:
        raise FaultSpecError(f"bad value in {kind} rule: {name} is out of range") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise FaultSpecError(f"bad value in {kind} rule: {name} must be a finite number")
    return result


def _list(data: dict[str, Any], kind: str) -> list[Any]:
    value = data.get(kind)
    if value is None:
        return []
    if not isinstance(value, list):
        raise FaultSpecError(f"{kind} must be a list of rules")
    return value


def _actions(raw: Any) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise FaultSpecError("actions must be an object of command: probability")
    out: dict[str, float] = {}
    for command, rate in raw.items():
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise FaultSpecError(f"actions: probability for {command!r} must be a number between 0 and 1")
        out[str(command)] = float(rate)
    return out


def _unavailable(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise FaultSpecError("each unavailable entry must be an object of strings, e.g. "
                             '{"server_type": "cx23", "location": "fsn1"}')
    return {str(k): v for k, v in raw.items()}


def _rule(raw: Any, kind: str) -> Rule:
    if not isinstance(raw, dict):
        raise FaultSpecError(f"each {kind} rule must be an object")
    # "fired" is what GET /_localcloud/faults reports: a document read there can be PUT back
    allowed = {"path", "method", "rate", "times", "code", "seconds", "fired"}
    if kind == "drops":
        allowed.add("after")
    unknown = set(raw) - allowed
    if unknown:
        raise FaultSpecError(f"unknown keys in {kind} rule: {', '.join(sorted(unknown))}")
    if not isinstance(raw.get("after", False), bool):
        raise FaultSpecError(f"after must be true or false in {kind} rule")
    for key in ("path", "method", "code"):
        if key in raw and not isinstance(raw[key], str):
            raise FaultSpecError(f"bad value in {kind} rule: {key} must be a string")
    rule = Rule(
        path=str(raw.get("path", "*")),
        method=str(raw.get("method", "*")).upper(),
        rate=_float(raw.get("rate", 1.0), "rate", kind),
        times=None if raw.get("times") is None else _int(raw["times"], "times", kind),
        code=str(raw.get("code", "")),
        seconds=_float(raw.get("seconds", 0.0), "seconds", kind),
        after=bool(raw.get("after", False)),
        fired=_int(raw.get("fired", 0), "fired", kind),
    )
    if not 0.0 <= rule.rate <= 1.0:
        raise FaultSpecError(f"rate must be between 0 and 1 in {kind} rule")
    if rule.fired < 0:
        raise FaultSpecError(f"fired must be 0 or more in {kind} rule")
    if rule.times is not None and rule.times < 0:
        raise FaultSpecError(f"times must be 0 or more in {kind} rule")
    if not 0.0 <= rule.seconds <= 3600.0:
        raise FaultSpecError(f"seconds must be between 0 and 3600 in {kind} rule")
    if kind == "latency" and "seconds" not in raw:
        raise FaultSpecError("latency rules need seconds")
    if kind == "errors" and not rule.code:
        raise FaultSpecError("errors rules need a code")
    return rule


def _apt_rule(raw: Any) -> AptRule:
    if not isinstance(raw, dict):
        raise FaultSpecError("each apt rule must be an object")
    unknown = set(raw) - {"fault", "path", "rate", "times", "status", "seconds", "fired"}
    if unknown:
        raise FaultSpecError(f"unknown keys in apt rule: {', '.join(sorted(unknown))}")
    if raw.get("fault") not in APT_FAULTS:
        raise FaultSpecError(f"apt rules need a fault: one of {', '.join(APT_FAULTS)}")
    if "path" in raw and not isinstance(raw["path"], str):
        raise FaultSpecError("bad value in apt rule: path must be a string")
    rule = AptRule(
        fault=str(raw["fault"]),
        path=str(raw.get("path", "*")),
        rate=_float(raw.get("rate", 1.0), "rate", "apt"),
        times=None if raw.get("times") is None else _int(raw["times"], "times", "apt"),
        status=_int(raw.get("status", 503), "status", "apt"),
        seconds=_float(raw.get("seconds", 30.0), "seconds", "apt"),
        fired=_int(raw.get("fired", 0), "fired", "apt"),
    )
    if not 0.0 <= rule.rate <= 1.0:
        raise FaultSpecError("rate must be between 0 and 1 in apt rule")
    if not 500 <= rule.status <= 599:
        raise FaultSpecError("status must be a 5xx code in apt rule")
    if not 0.0 <= rule.seconds <= 3600.0:
        raise FaultSpecError("seconds must be between 0 and 3600 in apt rule")
    if rule.fired < 0 or (rule.times is not None and rule.times < 0):
        raise FaultSpecError("times and fired must be 0 or more in apt rule")
    return rule
