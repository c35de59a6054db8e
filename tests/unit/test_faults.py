"""Fault documents: parsing, validation, rule matching, times and rate."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from localcloud.faults import Faults, FaultSpecError, Rule, parse

FULL = {
    "errors": [{"method": "post", "path": "/servers", "code": "conflict", "rate": 1.0, "times": 2}],
    "latency": [{"method": "*", "path": "/servers*", "seconds": 0.2}],
    "drops": [{"method": "GET", "path": "/actions*", "rate": 0.1}],
    "actions": {"create_server": 0.5},
    "unavailable": [{"server_type": "cx23", "location": "fsn1"}],
}


def test_empty_documents_mean_no_faults() -> None:
    for spec in (None, "", "{}", {}):
        faults = parse(spec)
        assert faults == Faults()
    assert parse('{"errors": null, "actions": null}') == Faults()


def test_full_document_round_trips(tmp_path: Path) -> None:
    faults = parse(FULL)
    assert faults.errors[0] == Rule(path="/servers", method="POST", rate=1.0, times=2, code="conflict")
    assert faults.latency[0].seconds == 0.2
    assert faults.drops[0].rate == 0.1
    assert faults.actions == {"create_server": 0.5}
    as_json = faults.to_json()
    assert as_json["errors"] == [{"path": "/servers", "method": "POST", "rate": 1.0, "times": 2, "fired": 0,
                                  "code": "conflict"}]
    assert as_json["latency"][0]["seconds"] == 0.2 and "code" not in as_json["latency"][0]
    assert parse(json.dumps(FULL)) == faults
    (tmp_path / "f.json").write_text(json.dumps(FULL))
    assert parse(f"@{tmp_path / 'f.json'}") == faults


def test_unavailable() -> None:
    faults = parse(FULL)
    assert faults.is_unavailable("server_type", "cx23", "fsn1")
    assert not faults.is_unavailable("server_type", "cx23", "nbg1")
    assert parse({"unavailable": [{"server_type": "cx33"}]}).is_unavailable("server_type", "cx33", "hel1")


@pytest.mark.parametrize(("spec", "message"), [
    ("{not json", "not valid JSON"),
    ("[1]", "must be a JSON object"),
    ("null", "must be a JSON object"),
    ({"eror": []}, "unknown fault kinds: eror"),
    ({"errors": {"code": "conflict"}}, "errors must be a list"),
    ({"errors": 5}, "errors must be a list"),
    ({"errors": ["conflict"]}, "must be an object"),
    ({"errors": [{"path": "/x"}]}, "need a code"),
    ({"errors": [{"code": "nonsense"}]}, "unknown error code"),
    ({"errors": [{"code": "conflict", "colour": "red"}]}, "unknown keys in errors rule: colour"),
    ({"errors": [{"code": "conflict", "rate": 1.5}]}, "rate must be between 0 and 1"),
    ({"errors": [{"code": "conflict", "rate": "often"}]}, "bad value"),
    ({"errors": [{"code": "conflict", "times": -1}]}, "times must be 0 or more"),
    ({"errors": [{"code": "conflict", "times": "twice"}]}, "bad value"),
    ({"latency": [{"path": "/x"}]}, "latency rules need seconds"),
    ({"latency": [{"seconds": -1}]}, "seconds must be between"),
    ({"latency": [{"seconds": [1]}]}, "bad value"),
    # issue 10, finding 10: numbers JSON can hold but a rule cannot use (int(1e999) overflowed)
    ('{"errors": [{"code": "conflict", "times": 1e999}]}', "times must be a whole number"),
    ('{"errors": [{"code": "conflict", "fired": -1e999}]}', "fired must be a whole number"),
    ('{"errors": [{"code": "conflict", "rate": 1e999}]}', "rate must be a finite number"),
    ('{"latency": [{"seconds": NaN}]}', "seconds must be a finite number"),
    ('{"apt": [{"fault": "error", "status": 1e999}]}', "status must be a whole number"),
    ('{"errors": [{"code": "conflict", "times": 2.5}]}', "times must be a whole number"),
    ('{"errors": [{"code": "conflict", "times": true}]}', "times must be a whole number"),
    ("[" * 100000, "not valid JSON"),
    ({"drops": [{"rate": -0.1}]}, "rate must be between"),
    ({"drops": [{"after": "yes"}]}, "after must be true or false"),
    ({"errors": [{"code": "conflict", "after": True}]}, "unknown keys in errors rule: after"),
    ({"actions": ["create_server"]}, "actions must be an object"),
    ({"actions": {"create_server": "half"}}, "between 0 and 1"),
    ({"actions": {"create_server": 2}}, "between 0 and 1"),
    ({"unavailable": ["cx23"]}, "unavailable entry"),
    ({"unavailable": [{"server_type": 1}]}, "unavailable entry"),
    ("@/nonexistent/faults.json", "cannot read fault file"),
])
def test_invalid_documents_raise_a_clear_fault_spec_error(spec: Any, message: str) -> None:
    with pytest.raises(FaultSpecError) as exc:
        parse(spec)
    assert message in str(exc.value)


def test_rule_matching_method_and_glob() -> None:
    rng = random.Random(1)
    rule = Rule(path="/servers*", method="POST", code="conflict")
    assert rule.applies("POST", "/servers", rng)
    assert rule.applies("POST", "/servers/1/actions/poweron", rng)
    assert not rule.applies("GET", "/servers", rng)
    assert not rule.applies("POST", "/ssh_keys", rng)
    anything = Rule()
    assert anything.applies("DELETE", "/whatever", rng)


def test_times_stops_a_rule_after_it_fired() -> None:
    rng = random.Random(1)
    rule = parse({"errors": [{"code": "conflict", "times": 2}]}).errors[0]
    assert [rule.applies("GET", "/x", rng) for _ in range(4)] == [True, True, False, False]
    assert rule.fired == 2
    never = parse({"errors": [{"code": "conflict", "times": 0}]}).errors[0]
    assert not never.applies("GET", "/x", rng)


def test_rate_is_a_probability_and_only_hits_count_towards_times() -> None:
    rng = random.Random(42)
    rule = Rule(rate=0.25)
    hits = sum(rule.applies("GET", "/x", rng) for _ in range(4000))
    assert 850 < hits < 1150 and rule.fired == hits
    limited = Rule(rate=0.5, times=3)
    assert sum(limited.applies("GET", "/x", rng) for _ in range(100)) == 3
    assert not any(Rule(rate=0.0).applies("GET", "/x", rng) for _ in range(100))


def test_drops_before_or_after_the_request_is_handled() -> None:
    faults = parse({"drops": [{"path": "/servers"}, {"path": "/volumes", "after": True}]})
    assert [r.after for r in faults.drops] == [False, True]
    assert [d["after"] for d in faults.to_json()["drops"]] == [False, True]
    assert parse(faults.to_json()).drops == faults.drops  # what GET shows can be PUT back


def test_a_document_read_back_keeps_its_counts() -> None:
    faults = parse(FULL)
    faults.errors[0].fired = 1
    again = parse(faults.to_json())
    assert again.errors[0].fired == 1 and again.to_json() == faults.to_json()
    with pytest.raises(FaultSpecError):
        parse({"errors": [{"code": "conflict", "fired": -1}]})
