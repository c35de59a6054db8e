"""localcloud/closed.py: the objects Hetzner's OpenAPI document closes, derived from the document
again, and how unknown keys in them are refused (field names as localcloud names them)."""

from __future__ import annotations

from typing import Any

import pytest

import localcloud.api  # noqa: F401  (registers the routes)
from localcloud import errors, router
from localcloud.closed import CLOSED, check_known_fields
from tests.body_strategies import merged
from tests.spec import Spec


@pytest.fixture(scope="module")
def spec(spec_document: Spec) -> Spec:
    return spec_document


def closed_objects(schema: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """path -> the keys allowed there, for every object the schema closes on every branch."""
    closed: dict[str, set[str]] = {}
    opened: set[str] = set()

    def walk(node: dict[str, Any], path: str) -> None:
        node = merged(node)
        for branch in node.get("oneOf", []) + node.get("anyOf", []):
            walk(branch, path)
        props = node.get("properties")
        if props is not None or node.get("type") == "object":
            if node.get("additionalProperties") is False:
                closed.setdefault(path, set()).update(props or {})
            else:
                opened.add(path)
        for key, inner in (props or {}).items():
            walk(inner, f"{path}.{key}" if path else key)
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    return {path: tuple(sorted(keys)) for path, keys in closed.items() if path not in opened}


def test_the_table_is_the_documents(spec: Spec) -> None:
    derived: dict[str, dict[str, tuple[str, ...]]] = {}
    for route in router.ROUTES:
        op = spec.find(route.method, route.pattern.replace("{", "").replace("}", ""))
        content = op.op.get("requestBody", {}).get("content", {}) if op else {}
        if route.method in ("POST", "PUT") and "application/json" in content:
            found = closed_objects(content["application/json"]["schema"])
            if found:
                derived[f"{route.method} {route.pattern}"] = found
    assert derived == CLOSED


def _refused(route: str, body: Any) -> dict[str, list[str]]:
    with pytest.raises(errors.ApiError) as caught:
        check_known_fields(route, body)
    assert caught.value.code == "invalid_input"
    return {f["name"]: f["messages"] for f in (caught.value.details or {})["fields"]}


def test_unknown_keys_are_refused_where_the_document_closes_the_object() -> None:
    assert _refused("PUT /firewalls/{id}", {"name": "fw", "nmae": "x"}) == {"nmae": ["unknown field name 'nmae'"]}
    body = {"name": "fw", "rules": [{"direction": "in", "protocol": "icmp"}, {"direction": "in", "protcol": "tcp"}],
            "apply_to": [{"type": "server", "server": {"id": 1, "name": "s"}}]}
    assert _refused("POST /firewalls", body) == {"rules[1].protcol": ["unknown field name 'protcol'"],
                                                 "apply_to[0].server.name": ["unknown field name 'name'"]}
    service = {"protocol": "tcp", "listen_port": 1, "destination_port": 1, "proxyprotocol": False,
               "health_check": {"protocol": "tcp", "port": 1, "interval": 15, "timeout": 10, "retries": 3, "x": 1}}
    assert _refused("POST /load_balancers", {"name": "lb", "services": [service]}) == {
        "services[0].health_check.x": ["unknown field name 'x'"]}


def test_open_objects_wrong_shapes_and_other_routes_are_left_to_the_handlers() -> None:
    check_known_fields("POST /servers", {"name": "s", "anything": 1})  # the document leaves it open
    check_known_fields("POST /load_balancers", {"name": "lb", "anything": 1, "services": [{"x": 1}]})
    check_known_fields("POST /firewalls", {"name": "fw", "rules": "not a list", "apply_to": [1, None]})
    check_known_fields("PUT /firewalls/{id}", ["not", "an", "object"])
    check_known_fields("POST /servers/{id}/actions/poweron", {"x": 1})
