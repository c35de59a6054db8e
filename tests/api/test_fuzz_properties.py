"""Property-based conformance: bodies generated from Hetzner's OpenAPI document, for every
POST/PUT operation with a JSON body that localcloud implements, sent to a real localcloud.

Each body is classified by the spec's own schema (tests/spec.py) before its answer is judged:

- a body the spec rejects gets a 4xx in Hetzner's format (``{"error": {"code", "message",
  "details"}}``) with the code the spec documents for bad input (``invalid_input``, or
  ``json_error``), never a success;
- a body the spec accepts never gets a 5xx; what localcloud answers is checked against the
  spec by the recorder, as for every other exchange of the suite.

The rejected bodies are valid ones broken at one place, every place the schema constrains and
every way it does (tests/body_strategies.py KINDS: JSON null or an array instead of the object,
wrong types, null where the spec does not allow it, missing required keys, unknown keys in
objects the spec closes, numbers out of range, strings not in the enum, too long, too short,
against the pattern, too many items). Hypothesis draws them, derandomized and bounded
(``max_examples`` per operation), with no example database. Failures are collected, not
shrunk: one run names every (operation, kind) that fails, each with its smallest body.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import localcloud.api  # noqa: F401  (registers the routes)
from localcloud import router
from tests.api.test_fuzz import Api, _operations
from tests.body_strategies import KINDS, invalid, valid
from tests.conftest import LocalCloud, SpecRecorder
from tests.spec import Spec

# Examples per operation, times NORNOS_FUZZ_SCALE (default 1: the CI budget, about 25 s for the
# module; a deeper run by hand: NORNOS_FUZZ_SCALE=10, still derandomized).
SCALE = max(1, int(os.environ.get("NORNOS_FUZZ_SCALE", "1")))
VALID_EXAMPLES = 12 * SCALE
INVALID_EXAMPLES = 36 * SCALE
REFUSAL_CODES = {"invalid_input", "json_error"}  # the spec's codes for a request body it cannot take
SETTINGS = settings(derandomize=True, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example])


@dataclass
class Target:
    """One operation on real resources: its path, its request schema, bodies known to work."""

    method: str
    path: str
    template: str
    schema: dict[str, Any]
    seeds: list[Any]


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)  # per kind ("valid" for accepted bodies)
    refused: int = 0
    not_refused: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)  # (operation, kind) -> smallest case

    def fail(self, target: Target, kind: str, body: Any, answer: str) -> None:
        self.not_refused += 1
        key = (f"{target.method} {target.template}", kind)
        case = f"{json.dumps(body)[:300]} -> {answer}"
        if key not in self.failures or len(case) < len(self.failures[key]):
            self.failures[key] = case

    def report(self) -> str:
        return "\n".join(f"{op} [{kind}]: {case}" for (op, kind), case in sorted(self.failures.items()))


@pytest.fixture
def fuzz_api(localcloud: LocalCloud, recorder: SpecRecorder) -> Iterator[Api]:
    """The session's localcloud, fresh, with actions that finish at once and no rate limit;
    every exchange goes through the recorder. Reset again afterwards."""
    localcloud.reset()
    localcloud.side("PUT", "config", {"rate_limit": 1_000_000, "time_scale": 0})
    api = Api(localcloud)
    api.session.hooks["response"].append(recorder.hook)
    try:
        yield api
    finally:
        localcloud.reset()
    if recorder.problems:
        listed = "\n  ".join(dict.fromkeys(recorder.problems))
        pytest.fail(f"{len(recorder.problems)} spec mismatch(es):\n  {listed}", pytrace=False)


def implemented_body_operations(spec: Spec) -> set[tuple[str, str]]:
    """(method, spec template) of every POST/PUT route of localcloud whose spec operation takes JSON."""
    found = set()
    for route in router.ROUTES:
        if route.method not in ("POST", "PUT"):
            continue
        op = spec.find(route.method, route.pattern.replace("{", "").replace("}", ""))
        if op is not None and "application/json" in op.op.get("requestBody", {}).get("content", {}):
            found.add((route.method, op.template))
    return found


def targets(api: Api, spec: Spec) -> list[Target]:
    """Every implemented body operation on real resources (the hand-picked fuzz test's set-up)."""
    by_path: dict[tuple[str, str], Target] = {}
    for method, path, make in _operations(api):
        op = spec.find(method, path)
        assert op is not None, (method, path)
        schema = op.op["requestBody"]["content"]["application/json"]["schema"]
        target = by_path.setdefault((method, path), Target(method, path, op.template, schema, []))
        target.seeds.append(make(0))
    implemented = implemented_body_operations(spec)
    found = [t for t in by_path.values() if (t.method, t.template) in implemented]  # not attach_iso
    missing = implemented - {(t.method, t.template) for t in found}
    assert not missing, f"operations localcloud implements with no target here: {sorted(missing)}"
    return found


def _send(api: Api, target: Target, body: Any) -> requests.Response:
    """The body as JSON text, whatever it is (``json=None`` would send no body at all)."""
    resp = api.session.request(target.method, api.base + target.path, data=json.dumps(body),
                               headers={"Content-Type": "application/json"}, timeout=20)
    api.sent += 1
    return resp


def _hetzner_error(resp: requests.Response) -> dict[str, Any] | None:
    try:
        error = resp.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None
    if (isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)
            and "details" in error):
        return error
    return None


def _run(target: Target, examples: int, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> None:
    @settings(SETTINGS, max_examples=examples)
    @given(strategy)
    def run(case: Any) -> None:
        check(case)

    run()


def _bodies(target: Target) -> st.SearchStrategy[Any]:
    return st.one_of([valid(target.schema, seed) for seed in target.seeds])


def test_bodies_the_spec_rejects_are_refused_in_hetzner_format(
        fuzz_api: Api, recorder: SpecRecorder, spec_document: Spec, localcloud: LocalCloud) -> None:
    started, log_start = time.monotonic(), localcloud.log.stat().st_size
    tally = Tally()
    found = targets(fuzz_api, spec_document)

    for target in found:
        def check(case: tuple[str, Any], target: Target = target) -> None:
            kind, body = case
            problems = spec_document.check_request(target.method, target.path, body)
            if not problems:
                return  # still valid (null where it is allowed, an ID for a name): the other test's part
            tally.sent[kind] += 1
            with recorder.invalid_requests():
                resp = _send(fuzz_api, target, body)
            tally.statuses[resp.status_code] += 1
            error = _hetzner_error(resp)
            if 400 <= resp.status_code < 500 and error is not None and error["code"] in REFUSAL_CODES:
                tally.refused += 1
            else:
                tally.fail(target, kind, body, f"{resp.status_code} {resp.text[:200]}; the spec: {problems[0]}")

        _run(target, INVALID_EXAMPLES, invalid(target.schema, _bodies(target)), check)
        fuzz_api.ok("GET", "/servers")  # renders what the last requests changed

    print(f"\n{len(found)} operations, {sum(tally.sent.values())} spec-rejected bodies in "
          f"{time.monotonic() - started:.1f} s; per kind {dict(tally.sent)}; answers {dict(tally.statuses)}")
    assert set(tally.sent) == set(KINDS), f"kinds never generated: {set(KINDS) - set(tally.sent)}"
    assert sum(tally.sent.values()) >= len(found) * INVALID_EXAMPLES // 2
    assert not tally.failures, (f"{tally.not_refused} bodies the spec rejects were not refused with invalid_input, "
                                f"{len(tally.failures)} (operation, kind):\n{tally.report()}")
    assert "Traceback" not in _new_log(localcloud, log_start), _new_log(localcloud, log_start)[-3000:]


def test_bodies_the_spec_accepts_never_fail_the_server(
        fuzz_api: Api, recorder: SpecRecorder, spec_document: Spec, localcloud: LocalCloud) -> None:
    started, log_start = time.monotonic(), localcloud.log.stat().st_size
    tally = Tally()
    found = targets(fuzz_api, spec_document)
    spec_valid = 0

    for target in found:
        def check(body: Any, target: Target = target) -> None:
            nonlocal spec_valid
            if spec_document.check_request(target.method, target.path, body):
                return  # the generator's imprecision (oneOf overlaps): not a body the spec accepts
            spec_valid += 1
            tally.sent["valid"] += 1
            resp = _send(fuzz_api, target, body)
            tally.statuses[resp.status_code] += 1
            if resp.status_code >= 500 or (resp.status_code >= 400 and _hetzner_error(resp) is None):
                tally.fail(target, "valid", body, f"{resp.status_code} {resp.text[:200]}")

        _run(target, VALID_EXAMPLES, _bodies(target), check)
        fuzz_api.ok("GET", "/servers")

    print(f"\n{len(found)} operations, {spec_valid} spec-accepted bodies in {time.monotonic() - started:.1f} s; "
          f"answers {dict(tally.statuses)}")
    assert spec_valid >= len(found) * VALID_EXAMPLES * 3 // 4
    assert not tally.failures, f"{len(tally.failures)} operations failed a body the spec accepts:\n{tally.report()}"
    assert "Traceback" not in _new_log(localcloud, log_start), _new_log(localcloud, log_start)[-3000:]


def _new_log(lc: LocalCloud, start: int) -> str:
    with lc.log.open("rb") as f:
        f.seek(start)
        return f.read().decode(errors="replace")
