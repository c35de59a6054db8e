"""Request bodies of the firewalls family: rules (direction, protocol, port, CIDR blocks) and
the resources of apply_to / remove_from."""

from __future__ import annotations

import ipaddress
from typing import Any

from localcloud import errors
from localcloud.api.firewalls.document import (
    _PORT,
    DESCRIPTION_MAX,
    DIRECTIONS,
    MAX_IPS,
    MAX_RULES,
    PORT_PROTOCOLS,
    PROTOCOLS,
    _selector_entry,
    _server_entry,
)
from localcloud.labels import parse_selector
from localcloud.store import Doc
from localcloud.validate import Body


# -- validation -----------------------------------------------------------------------------
def _read_cidrs(body: Body, key: str) -> list[str] | None:
    """A list of CIDR blocks (networks or single hosts), IPv6 in canonical form (RFC 5952)."""
    values = body.array(key, default=[])
    if values is None:
        return None
    if len(values) > MAX_IPS:
        body.problem(key, f"at most {MAX_IPS} CIDR blocks are allowed")
        return None
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or "/" not in value:
            body.problem(key, f"{value!r} is not a CIDR block")
            continue
        try:
            out.append(str(ipaddress.ip_network(value, strict=True)))
        except ValueError:
            body.problem(key, f"{value!r} is not a valid CIDR block (host bits must be zero)")
    return out


def _check_port(body: Body, port: str) -> None:
    if port == "any":
        return
    match = _PORT.fullmatch(port)
    if not match:
        body.problem("port", f"{port!r} must be a port, a range like 1024-5000, or any")
        return
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not (1 <= low <= 65535 and 1 <= high <= 65535):
        body.problem("port", f"{port!r}: ports are 1-65535")
    elif high < low:
        body.problem("port", f"{port!r}: the range must not end below its start")


def _read_rule(data: Any, prefix: str) -> tuple[Body, Doc | None]:
    body = Body(data, prefix=prefix)
    direction = body.string("direction", required=True, choices=DIRECTIONS)
    protocol = body.string("protocol", required=True, choices=PROTOCOLS)
    port = body.string("port")
    description = body.string("description", max_len=DESCRIPTION_MAX, nullable=True)
    source_ips = _read_cidrs(body, "source_ips")
    destination_ips = _read_cidrs(body, "destination_ips")
    if protocol in PORT_PROTOCOLS:
        if port is None:
            body.problem("port", f"is required for protocol {protocol}")
        else:
            _check_port(body, port)
    elif protocol is not None and port is not None:
        body.problem("port", f"is only allowed for protocols tcp and udp, not {protocol}")
    if direction == "in":
        if source_ips is not None and not source_ips and not body.problems.get(prefix + "source_ips"):
            body.problem("source_ips", "at least one CIDR block is required for direction in")
        if destination_ips:
            body.problem("destination_ips", "must be empty for direction in (use source_ips)")
    elif direction == "out":
        if destination_ips is not None and not destination_ips \
                and not body.problems.get(prefix + "destination_ips"):
            body.problem("destination_ips", "at least one CIDR block is required for direction out")
        if source_ips:
            body.problem("source_ips", "must be empty for direction out (use destination_ips)")
    if body.problems:
        return body, None
    return body, {"direction": direction, "protocol": protocol,
                  "port": port if protocol in PORT_PROTOCOLS else None,
                  "source_ips": source_ips or [], "destination_ips": destination_ips or [],
                  "description": description}


def _read_rules(body: Body, required: bool) -> list[Doc] | None:
    raw = body.array("rules", required=required)
    if raw is None:
        return None
    if len(raw) > MAX_RULES:
        body.problem("rules", f"a firewall holds at most {MAX_RULES} rules, got {len(raw)}")
        return None
    rules: list[Doc] = []
    for i, item in enumerate(raw):
        rule_body, rule = _read_rule(item, f"rules[{i}].")
        body.merge(rule_body)
        if rule is not None:
            rules.append(rule)
    return rules


def _read_resources(body: Body, key: str, required: bool) -> list[Doc] | None:
    """Syntax of apply_to / remove_from: server {id} or label_selector {selector}."""
    raw = body.array(key, required=required)
    if raw is None:
        return None
    entries: list[Doc] = []
    for i, item in enumerate(raw):
        entry_body = Body(item, prefix=f"{key}[{i}].")
        rtype = entry_body.string("type", required=True, choices=("server", "label_selector"))
        if rtype == "server":
            server = entry_body.object("server", required=True)
            if server is not None:
                sid = server.integer("id", required=True, minimum=1)
                entry_body.merge(server)
                if sid is not None:
                    entries.append(_server_entry(sid))
        elif rtype == "label_selector":
            sel = entry_body.object("label_selector", required=True)
            if sel is not None:
                text = sel.string("selector", required=True)
                entry_body.merge(sel)
                if text is not None:
                    try:
                        parse_selector(text)
                    except errors.ApiError as exc:
                        message = exc.details["fields"][0]["messages"][0] if exc.details else exc.message
                        entry_body.problem("label_selector.selector", message)
                    else:
                        entries.append(_selector_entry(text))
        body.merge(entry_body)
    return entries
