"""Labels and label selectors (spec: "Labels", "Label Selector")."""

from __future__ import annotations

import pytest

from localcloud.errors import ApiError
from localcloud.labels import key_problem, parse_selector, validate_labels, value_problem

LABELS = {
    "web1": {"env": "prod", "role": "web", "example.com/team": "a"},
    "web2": {"env": "staging", "role": "web"},
    "db1": {"env": "prod", "role": "db", "backup": ""},
    "bare": {},
}


def matching(selector: str) -> set[str]:
    sel = parse_selector(selector)
    return {name for name, labels in LABELS.items() if sel.matches(labels)}


@pytest.mark.parametrize(("selector", "expected"), [
    ("env==prod", {"web1", "db1"}),
    ("env=prod", {"web1", "db1"}),
    ("env!=prod", {"web2", "bare"}),  # absent key counts as "not equal"
    ("backup", {"db1"}),
    ("!backup", {"web1", "web2", "bare"}),
    ("env in (prod,staging)", {"web1", "web2", "db1"}),
    ("env in (staging)", {"web2"}),
    ("env notin (prod)", {"web2", "bare"}),  # absent key is "not in"
    ("env notin (prod, staging)", {"bare"}),
    ("role==web,env!=staging", {"web1"}),
    ("env=prod,type!=database", {"web1", "db1"}),
    ("role in (web,db),!backup", {"web1", "web2"}),
    ("env in (prod),role notin (db),example.com/team", {"web1"}),
    ("example.com/team==a", {"web1"}),
    (" env = prod , role = db ", {"db1"}),
    ("backup==", {"db1"}),  # an empty value is a value
    ("env in(prod)", {"web1", "db1"}),
    ("hetzner.cloud/x", set()),  # reserved keys cannot be set, but may be selected on
])
def test_selector_forms(selector: str, expected: set[str]) -> None:
    assert matching(selector) == expected


@pytest.mark.parametrize("selector", [
    "", "   ", "a,", "a,,b", ",a", "k=v=w", "!k==v", "a b", "(a)", "a in (x,y", "a in ()",
    "a in (x y)", "a notin ()", "a==b c", "-bad==x", "a/b/c==x", "UPPER.example.com/x==1", "k==-v",
    "a==" + "x" * 64, "x" * 64,
])
def test_malformed_selectors_are_invalid_input(selector: str) -> None:
    with pytest.raises(ApiError) as exc:
        parse_selector(selector)
    assert exc.value.code == "invalid_input" and exc.value.status == 422
    assert exc.value.details == {"fields": [{"name": "label_selector", "messages": [exc.value.details["fields"][0]
                                                                                  ["messages"][0]]}]}


@pytest.mark.parametrize("key", [
    "a", "A9", "a-b_c.d", "x" * 63, "example.com/name", "a.b-c.example/x", "k8s.io/app", "a" * 63 + ".io/x",
])
def test_valid_keys(key: str) -> None:
    assert key_problem(key) is None


@pytest.mark.parametrize(("key", "why"), [
    ("", "name"), ("-a", "name"), ("a-", "name"), ("x" * 64, "name"), ("a b", "name"), ("a/", "name"),
    ("a/b/c", "at most one"), ("/a", "DNS"), ("Example.com/a", "DNS"), ("-x.com/a", "DNS"),
    ("ex_ample.com/a", "DNS"), ((("a" * 63 + ".") * 4) + "com/x", "DNS"),
    ("hetzner.cloud/x", "reserved"), ("foo.hetzner.cloud/x", "reserved"),
])
def test_invalid_keys(key: str, why: str) -> None:
    problem = key_problem(key)
    assert problem is not None and why in problem


def test_reserved_prefix_is_only_the_hetzner_domain() -> None:
    assert key_problem("nothetzner.cloud/x") is None
    assert key_problem("hetzner.cloud.example.com/x") is None
    assert key_problem("hetzner.cloud/x", allow_reserved=True) is None


@pytest.mark.parametrize("value", ["", "a", "A-b_c.9", "x" * 63])
def test_valid_values(value: str) -> None:
    assert value_problem(value) is None


@pytest.mark.parametrize("value", ["-a", "a-", "x" * 64, "a b", "ä", 1, None, True])
def test_invalid_values(value: object) -> None:
    assert value_problem(value) is not None


def test_validate_labels_collects_every_problem_under_the_field() -> None:
    assert validate_labels({"a": "b", "example.com/c": ""}) == {"a": "b", "example.com/c": ""}
    with pytest.raises(ApiError) as exc:
        validate_labels({"hetzner.cloud/x": "y", "ok": "fine", "bad": "-v", "n": 1}, "server.labels")
    assert exc.value.code == "invalid_input"
    fields = exc.value.details["fields"]
    assert [f["name"] for f in fields] == ["server.labels"]
    assert len(fields[0]["messages"]) == 3
    for not_an_object in (["a"], "a=b", None, 5):
        with pytest.raises(ApiError) as exc:
            validate_labels(not_an_object)
        assert exc.value.code == "invalid_input"
