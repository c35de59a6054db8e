"""The Hetzner Cloud API's error responses, as the official spec defines them.

Handlers raise :class:`ApiError`; the HTTP layer turns it into
``{"error": {"code", "message", "details"}}`` with the spec's status code.
"""

from __future__ import annotations

from typing import Any

# Status codes per error code, from the spec's "Errors" section.
STATUS_BY_CODE: dict[str, int] = {
    "json_error": 400,
    "unauthorized": 401,
    "token_readonly": 401,
    "forbidden": 403,
    "maintenance": 403,
    "resource_limit_exceeded": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "uniqueness_error": 409,
    "conflict": 409,
    "deprecated_api_endpoint": 410,
    "resource_unavailable": 412,
    "invalid_input": 422,
    "service_error": 422,
    "unsupported_error": 422,
    "placement_error": 422,
    "locked": 423,
    "protected": 423,
    "rate_limit_exceeded": 429,
    "server_error": 500,
    "bad_gateway": 502,
    "unavailable": 503,
    "timeout": 504,
    # operation-specific codes (spec, per operation)
    "server_already_attached": 422,
    "server_not_attached_to_network": 422,
    "ip_not_available": 422,
    "no_subnet_available": 422,
    "networks_overlap": 422,
    "firewall_already_applied": 422,
    "firewall_already_removed": 422,
    "firewall_resource_not_found": 422,
    "firewall_managed_by_label_selector": 422,
    "private_net_only_server": 422,
    "resource_in_use": 422,
    "no_space_left_in_location": 422,
    "target_already_defined": 422,
    "source_port_already_used": 422,
    "load_balancer_not_attached_to_network": 422,
    "load_balancer_already_attached": 422,
    "cloud_resource_ip_not_allowed": 422,
    "primary_ip_assigned": 422,
    "primary_ip_datacenter_mismatch": 422,
    "primary_ip_version_mismatch": 412,
    "server_not_stopped": 422,
    "volume_already_attached": 422,
    "volume_size_not_multiple_of_gb": 422,
    "volume_not_attached": 422,
}


class ApiError(Exception):
    """An error the API reports to the client."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.status = status if status is not None else STATUS_BY_CODE.get(code, 422)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def not_found(what: str = "resource") -> ApiError:
    return ApiError("not_found", f"{what} not found")


def invalid_input(fields: dict[str, list[str]] | None = None, message: str | None = None) -> ApiError:
    """invalid_input with the spec's ``details.fields`` list (name + messages)."""
    fields = fields or {}
    if message is None:
        if fields:
            name, messages = next(iter(fields.items()))
            message = f"invalid input in field '{name}': {messages[0] if messages else 'is invalid'}"
        else:
            message = "invalid input"
    details = {"fields": [{"name": n, "messages": m} for n, m in fields.items()]}
    return ApiError("invalid_input", message, details)


def invalid_field(name: str, message: str) -> ApiError:
    return invalid_input({name: [message]})


def uniqueness_error(field: str, message: str) -> ApiError:
    return ApiError("uniqueness_error", message, {"fields": [{"name": field}]})


def protected(message: str = "cannot perform operation: resource is protected") -> ApiError:
    return ApiError("protected", message)


def locked(message: str = "the resource is locked by a running action") -> ApiError:
    return ApiError("locked", message)


def conflict(message: str = "the resource has changed during the request, please retry") -> ApiError:
    return ApiError("conflict", message)


def resource_limit_exceeded(limit_name: str, message: str) -> ApiError:
    return ApiError("resource_limit_exceeded", message, {"limits": [{"name": limit_name}]})


def resource_unavailable(message: str) -> ApiError:
    return ApiError("resource_unavailable", message)
