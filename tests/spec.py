"""Conformance with Hetzner's official OpenAPI document.

Every request the API tests send (hcloud-python in the test process, provision.py and the
other tools in subprocesses: tests/support/sitecustomize.py records their exchanges) and
every response localcloud gives is checked here against Hetzner's OpenAPI document
(``$HCLOUD_OPENAPI``; the default is the copy beside the checkout, read in place, never
copied into the repository): bodies with their formats (date-time, int32/int64, decimal),
and query parameters. Mismatches fail the test that caused them. Under ``CI=true`` a
missing document fails the run (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jsonschema import Draft202012Validator, FormatChecker
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


# The formats the document uses (date-time 398 times, int64, int32, double, decimal); jsonschema
# checks date-time only with an optional package, so each is checked here, strictly.
FORMATS = FormatChecker(formats=())
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))  # a real date and time
    return True


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("decimal", raises=InvalidOperation)
def _decimal(value: object) -> bool:
    return not isinstance(value, str) or Decimal(value).is_finite()


# Requests the project sends on purpose although the spec forbids them: (method, template,
# exact JSON body) -> why. Each must still fail the spec (else the entry is stale) and its
# response is checked as usual.
DELIBERATELY_INVALID: dict[tuple[str, str, str], str] = {
    ("POST", "/ssh_keys", "{}"):
        "nornos_infra/cloud/connection.py check_write_access: a create with an empty body can never create "
        "anything; it tells a read-write token (invalid_input) from a read-only one (token_readonly) without writing",
}


# What the real API accepts although its spec forbids it: (method, template, where the key is
# missing, with list indices as [], the missing key) -> the evidence. Such a request is not a
# spec violation in these checks, and localcloud accepts it as the real API does.
REAL_API_ACCEPTS: dict[tuple[str, str, str, str], str] = {
    ("POST", "/load_balancers", "services[].health_check.http", "domain"):
        "hcloud-python (LoadBalancerHealthCheckHttp.domain defaults to None and is left out of the request "
        "unless set) and the hcloud CLI (--health-check-http-domain is optional) create http health checks "
        "without a domain; the spec lists it as required but nullable, and null means no Host header",
}


def _accepted_by_the_real_api(method: str, template: str, error: Any) -> bool:
    """``error`` is only keys missing that REAL_API_ACCEPTS lists (in some branch of an anyOf/oneOf)."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[Any]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        return any(all(_accepted_by_the_real_api(method, template, sub) for sub in subs)
                   for subs in branches.values())
    if error.validator != "required" or not isinstance(error.instance, dict):
        return False
    missing = [key for key in error.validator_value if key not in error.instance]
    where = ".".join("[]" if isinstance(part, int) else str(part) for part in error.absolute_path)
    where = where.replace(".[]", "[]")
    return bool(missing) and all((method, template, where, key) in REAL_API_ACCEPTS for key in missing)


def deliberately_invalid(spec: Spec, method: str, path: str, body: Any) -> str | None:
    """The reason a request is sent although the spec forbids it, or None."""
    op = spec.find(method, path)
    if op is None:
        return None
    return DELIBERATELY_INVALID.get((method, op.template, json.dumps(body, sort_keys=True)))


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
        return Draft202012Validator(ref, registry=self.registry, format_checker=FORMATS)

    def check_query(self, method: str, path: str, query: str) -> list[str]:
        """Every query parameter must be one the operation documents, with a value its schema
        allows (arrays are repeated parameters, ``id=1&id=2``, the spec's form style)."""
        op = self.find(method, path)
        if op is None or not query:
            return []
        documented = {p["name"]: (i, p) for i, p in enumerate(op.op.get("parameters", [])) if p["in"] == "query"}
        given: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            given.setdefault(name, []).append(value)
        problems = []
        for name, values in given.items():
            if name not in documented:
                problems.append(f"query {method} {op.template}: {name} is not a parameter of this operation")
                continue
            i, param = documented[name]
            schema = param["schema"]
            if schema.get("type") == "array":
                instance: Any = [_coerce(v, schema.get("items", {})) for v in values]
            elif len(values) > 1:
                problems.append(f"query {method} {op.template}: {name} given {len(values)} times")
                continue
            else:
                instance = _coerce(values[0], schema)
            ptr = ("paths", op.template, method.lower(), "parameters", str(i), "schema")
            problems += [f"query {method} {op.template}: {name}={values}: {e.message[:200]}"
                         for e in self._validator(*ptr).iter_errors(instance)]
        return problems

    def check_request(self, method: str, path: str, body: Any) -> list[str]:
        op = self.find(method, path)
        if op is None:
            return [f"{method} {path}: no such operation in the spec"]
        content = op.op.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None:  # a JSON null body is checked like any other (no body is not checked)
            return []
        ptr = ("paths", op.template, method.lower(), "requestBody", "content", "application/json", "schema")
        return [f"request {method} {op.template}: {_describe(e)}" for e in self._validator(*ptr).iter_errors(body)
                if not _id_or_name(e, content["schema"]) and not _accepted_by_the_real_api(method, op.template, e)]

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


def _coerce(text: str, schema: dict[str, Any]) -> Any:
    """A query value as the type its schema names (left a string when it is not one)."""
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"-?\d+", text):
        return int(text)
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return text


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
