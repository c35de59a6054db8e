"""Conformance with Hetzner's official OpenAPI document.

Every request hcloud-python sends and every response localcloud gives in the API tests
is checked here against ../shared/reference/hcloud-openapi.json (read in place, never
copied into the repository). Mismatches are collected and fail the test that caused them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(os.environ.get(
    "HCLOUD_OPENAPI", Path(__file__).resolve().parents[2] / "shared" / "reference" / "hcloud-openapi.json"))
SPEC_URI = "urn:hcloud-openapi"


# Hetzner changes newer than the spec copy (2026-07-08) that hcloud-python 2.27 relies on:
# (method, template, status) -> pointer of the schema to check the response against instead.
POST_SPEC_RESPONSES: dict[tuple[str, str, int], tuple[str, ...]] = {
    # changelog 2026-10-05 "Deleting a Load Balancer now returns an Action"; hcloud-python 2.27's
    # LoadBalancersClient.delete reads response["action"] and fails on the spec's empty 204.
    ("DELETE", "/load_balancers/{id}", 200):
        ("paths", "/servers/{id}", "delete", "responses", "200", "content", "application/json", "schema"),
}


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class Operation:
    method: str
    template: str
    regex: re.Pattern[str]
    op: dict[str, Any]


@dataclass
class Spec:
    document: dict[str, Any]
    operations: list[Operation] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path = SPEC_PATH) -> Spec:
        spec = cls(json.loads(path.read_text()))
        for template, item in spec.document["paths"].items():
            regex = re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$")
            for method, op in item.items():
                if method in ("get", "post", "put", "delete"):
                    spec.operations.append(Operation(method.upper(), template, regex, op))
        # literal paths before templated ones (/servers/actions before /servers/{id})
        spec.operations.sort(key=lambda o: o.template.count("{"))
        return spec

    @cached_property
    def registry(self) -> Registry[Any]:
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        return Registry().with_resource(SPEC_URI, resource)

    def find(self, method: str, path: str) -> Operation | None:
        for op in self.operations:
            if op.method == method and op.regex.match(path):
                return op
        return None

    def _validator(self, *pointer: str) -> Draft202012Validator:
        ref = {"$ref": f"{SPEC_URI}#/{_pointer(*pointer)}"}
        return Draft202012Validator(ref, registry=self.registry)

    def check_request(self, method: str, path: str, body: Any) -> list[str]:
        op = self.find(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in the spec"]
        content = op.op.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None or body is None:
            return []
        ptr = ("paths", op.template, method.lower(), "requestBody", "content", "application/json", "schema")
        return [f"request {method} {op.template}: {_describe(e)}" for e in self._validator(*ptr).iter_errors(body)
                if not _id_or_name(e, content["schema"])]

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        op = self.find(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in the spec"]
        override = POST_SPEC_RESPONSES.get((method, op.template, status))
        if override is not None:
            return [f"response {method} {op.template} {status}: {_describe(e)}"
                    for e in self._validator(*override).iter_errors(body)]
        responses = op.op["responses"]
        key = str(status)
        if key not in responses:
            key = f"{str(status)[0]}xx"
        if key not in responses:
            return [f"{method} {op.template}: status {status} is not a documented response"]
        content = responses[key].get("content", {}).get("application/json")
        if content is None:
            return [] if body is None else [f"{method} {op.template}: {status} must have no body"]
        if body is None:
            return [f"{method} {op.template}: {status} needs a JSON body"]
        ptr = ("paths", op.template, method.lower(), "responses", key, "content", "application/json", "schema")
        return [f"response {method} {op.template} {status}: {_describe(e)}"
                for e in self._validator(*ptr).iter_errors(body)]


def _id_or_name(error: Any, body_schema: dict[str, Any]) -> bool:
    """The spec types "ID or name" fields (server_type, image, location, ssh_keys) as strings while
    its own descriptions, the real API and hcloud-python send integer ids there: not a mismatch."""
    if error.validator != "type" or error.validator_value != "string" or not isinstance(error.instance, int):
        return False
    path = [p for p in error.absolute_path if isinstance(p, str)]
    schema: dict[str, Any] = body_schema
    description = ""
    for name in path:
        schema = schema.get("properties", {}).get(name, {})
        if schema.get("type") == "array":
            description = schema.get("description", "")
            schema = schema.get("items", {})
        else:
            description = schema.get("description", "")
    return "ID" in description and "name" in description


def _describe(error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message[:300]}"


def split(url: str) -> str:
    """The path below /v1 of a request URL."""
    path = urlsplit(url).path
    return path[path.index("/v1") + 3:] if "/v1" in path else path
