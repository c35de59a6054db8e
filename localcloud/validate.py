"""Request-body reading with the API's invalid_input errors (never a 500 for bad input).

A :class:`Body` reads typed fields and collects every problem, then :meth:`Body.check`
raises one invalid_input that names them all, as the real API does.

``null`` is refused for every field unless the reader says ``nullable=True``: the spec allows
it only for a few (a firewall rule's description, DNS pointers, a health check's domain, a
server's public_net ipv4/ipv6, a primary IP's assignee_id); an absent field is another matter.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from localcloud import errors
from localcloud.labels import validate_labels

_MISSING = object()


class _JsonNull:
    """A request body that is the JSON text ``null``: not an object, unlike an absent body."""

    def __repr__(self) -> str:
        return "JSON_NULL"


JSON_NULL: Any = _JsonNull()


class Body:
    def __init__(self, data: Any, prefix: str = "") -> None:
        self.prefix = prefix
        self.problems: dict[str, list[str]] = {}
        if data is None:  # no body at all
            data = {}
        if not isinstance(data, dict):
            self.problems[prefix.rstrip(".") or "body"] = ["must be a JSON object"]
            data = {}
        self.data: dict[str, Any] = data

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def problem(self, key: str, message: str) -> None:
        self.problems.setdefault(self.prefix + key, []).append(message)

    def _get(self, key: str, required: bool, nullable: bool = False) -> Any:
        value = self.data.get(key, _MISSING)
        if value is None:
            if not nullable or required:
                self.problem(key, "must not be null")
            return _MISSING
        if value is _MISSING:
            if required:
                self.problem(key, "is required")
            return _MISSING
        return value

    def string(self, key: str, required: bool = False, default: str | None = None,
            choices: tuple[str, ...] | None = None, max_len: int | None = None, nullable: bool = False) -> Any:
        value = self._get(key, required, nullable)
        if value is _MISSING:
            return default
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return default
        if choices is not None and value not in choices:
            self.problem(key, f"must be one of {', '.join(choices)}")
            return default
        if max_len is not None and len(value) > max_len:
            self.problem(key, f"is too long (at most {max_len} characters)")
            return default
        return value

    def name(self, key: str = "name", required: bool = True, max_len: int = 63) -> Any:
        """A resource name: 1-63 characters for most resources (some families allow more)."""
        value = self.string(key, required=required)
        if value is not None and not (1 <= len(value) <= max_len and value.strip() == value):
            self.problem(key, f"must be 1-{max_len} characters without surrounding spaces")
            return None
        return value

    def integer(self, key: str, required: bool = False, default: int | None = None,
            minimum: int | None = None, maximum: int | None = None, nullable: bool = False) -> Any:
        value = self._get(key, required, nullable)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, "must be an integer")
            return default
        if not -(2**63) <= value < 2**63:  # every integer of the API is an int64 (or int32) in the spec
            self.problem(key, "must be a 64-bit integer")
            return default
        if minimum is not None and value < minimum:
            self.problem(key, f"must be at least {minimum}")
            return default
        if maximum is not None and value > maximum:
            self.problem(key, f"must be at most {maximum}")
            return default
        return value

    def boolean(self, key: str, required: bool = False, default: bool | None = None) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.problem(key, "must be a boolean")
            return default
        return value

    def id_or_name(self, key: str, required: bool = False) -> Any:
        """Fields that take an id or a name (server_type, image, location, ssh_keys)."""
        value = self._get(key, required)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            self.problem(key, "must be an ID or a name")
            return None
        return value

    def array(self, key: str, required: bool = False, default: list[Any] | None = None,
              strings: bool = False) -> Any:
        """A JSON array; with ``strings``, of strings only (checked here, before any lookup)."""
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, list):
            self.problem(key, "must be an array")
            return default
        if strings and not all(isinstance(item, str) for item in value):
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    self.problem(f"{key}[{i}]", "must be a string")
            return default
        return value

    def object(self, key: str, required: bool = False) -> Body | None:
        value = self._get(key, required)
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            self.problem(key, "must be an object")
            return None
        return Body(value, prefix=f"{self.prefix}{key}.")

    def labels(self, key: str = "labels") -> dict[str, str] | None:
        value = self._get(key, False)
        if value is _MISSING:
            return None
        try:
            return validate_labels(value, self.prefix + key)
        except errors.ApiError as exc:
            for f in (exc.details or {}).get("fields", []):
                self.problems.setdefault(f["name"], []).extend(f["messages"])
            return None

    def cidr(self, key: str, required: bool = False, version: int | None = None) -> Any:
        value = self.string(key, required=required)
        if value is None:
            return None
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError:
            self.problem(key, "is not a valid CIDR network")
            return None
        if version is not None and net.version != version:
            self.problem(key, f"must be an IPv{version} network")
            return None
        return value

    def ip(self, key: str, required: bool = False, nullable: bool = False) -> Any:
        value = self.string(key, required=required, nullable=nullable)
        if value is None:
            return None
        try:
            ipaddress.ip_address(value)
        except ValueError:
            self.problem(key, "is not a valid IP address")
            return None
        return value

    def merge(self, other: Body) -> None:
        for k, v in other.problems.items():
            self.problems.setdefault(k, []).extend(v)

    def check(self) -> None:
        if self.problems:
            raise errors.invalid_input(self.problems)
