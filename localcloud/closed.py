"""Objects of request bodies that Hetzner's OpenAPI document closes (``additionalProperties:
false``): a key the document does not name there is refused with invalid_input, as the real API
refuses one ("invalid input: unknown field name 'labelkey'"). Objects the document leaves open
(a server create, a load balancer's service) keep ignoring unknown keys.

The table is the document's, per operation: "" is the body itself, ``rules[]`` every item of
its ``rules``, ``apply_to[].server`` the ``server`` object of every ``apply_to`` item.
tests/unit/test_closed_objects.py derives it from the document again and compares.
"""

from __future__ import annotations

from typing import Any

from localcloud import errors

CLOSED: dict[str, dict[str, tuple[str, ...]]] = {
    "POST /firewalls": {
        "": ("apply_to", "labels", "name", "rules"),
        "rules[]": ("description", "destination_ips", "direction", "port", "protocol", "source_ips"),
        "apply_to[]": ("label_selector", "server", "type"),
        "apply_to[].server": ("id",),
        "apply_to[].label_selector": ("selector",),
    },
    "PUT /firewalls/{id}": {
        "": ("labels", "name"),
    },
    "POST /firewalls/{id}/actions/apply_to_resources": {
        "": ("apply_to",),
        "apply_to[]": ("label_selector", "server", "type"),
        "apply_to[].server": ("id",),
        "apply_to[].label_selector": ("selector",),
    },
    "POST /firewalls/{id}/actions/remove_from_resources": {
        "": ("remove_from",),
        "remove_from[]": ("label_selector", "server", "type"),
        "remove_from[].server": ("id",),
        "remove_from[].label_selector": ("selector",),
    },
    "POST /firewalls/{id}/actions/set_rules": {
        "": ("rules",),
        "rules[]": ("description", "destination_ips", "direction", "port", "protocol", "source_ips"),
    },
    "POST /load_balancers": {
        "services[].health_check": ("http", "interval", "port", "protocol", "retries", "timeout"),
        "services[].health_check.http": ("domain", "path", "response", "status_codes", "tls"),
        "targets[].server": ("id", "ip"),
    },
    "POST /load_balancers/{id}/actions/add_service": {
        "health_check": ("http", "interval", "port", "protocol", "retries", "timeout"),
        "health_check.http": ("domain", "path", "response", "status_codes", "tls"),
    },
    "POST /load_balancers/{id}/actions/add_target": {
        "server": ("id", "ip"),
    },
    "POST /load_balancers/{id}/actions/remove_target": {
        "server": ("id", "ip"),
    },
    "POST /load_balancers/{id}/actions/update_service": {
        "health_check": ("http", "interval", "port", "protocol", "retries", "timeout"),
        "health_check.http": ("domain", "path", "response", "status_codes", "tls"),
    },
    "POST /networks": {
        "": ("expose_routes_to_vswitch", "ip_range", "labels", "name", "routes", "subnets"),
        "subnets[]": ("ip_range", "network_zone", "type", "vswitch_id"),
        "routes[]": ("destination", "gateway"),
    },
    "PUT /networks/{id}": {
        "": ("expose_routes_to_vswitch", "labels", "name"),
    },
    "POST /networks/{id}/actions/add_route": {
        "": ("destination", "gateway"),
    },
    "POST /networks/{id}/actions/add_subnet": {
        "": ("ip_range", "network_zone", "type", "vswitch_id"),
    },
    "POST /networks/{id}/actions/change_ip_range": {
        "": ("ip_range",),
    },
    "POST /networks/{id}/actions/change_protection": {
        "": ("delete",),
    },
    "POST /networks/{id}/actions/delete_route": {
        "": ("destination", "gateway"),
    },
    "POST /networks/{id}/actions/delete_subnet": {
        "": ("ip_range",),
    },
    "POST /primary_ips": {
        "": ("assignee_id", "assignee_type", "auto_delete", "labels", "location", "name", "type"),
    },
    "PUT /primary_ips/{id}": {
        "": ("auto_delete", "labels", "name"),
    },
    "POST /primary_ips/{id}/actions/assign": {
        "": ("assignee_id", "assignee_type"),
    },
}


def _objects(value: Any, path: str, where: str) -> list[tuple[str, dict[str, Any]]]:
    """The objects at ``path`` (as in :data:`CLOSED`) within ``value``, with their field names."""
    if not path:
        return [(where, value)] if isinstance(value, dict) else []
    head, _, rest = path.partition(".")
    name, items = (head[:-2], True) if head.endswith("[]") else (head, False)
    if not isinstance(value, dict) or name not in value:
        return []
    inner, field = value[name], f"{where}.{name}" if where else name
    if not items:
        return _objects(inner, rest, field)
    if not isinstance(inner, list):
        return []
    return [found for i, item in enumerate(inner) for found in _objects(item, rest, f"{field}[{i}]")]


def check_known_fields(route: str, body: Any) -> None:
    """Refuse keys the document does not allow in an object it closes (``route``: "POST /firewalls")."""
    problems: dict[str, list[str]] = {}
    for path, allowed in CLOSED.get(route, {}).items():
        for where, obj in _objects(body, path, ""):
            for key in obj:
                if key not in allowed:
                    problems.setdefault(f"{where}.{key}" if where else key, []).append(
                        f"unknown field name '{key}'")
    if problems:
        raise errors.invalid_input(problems)
