"""Bad input never reaches a Python exception, and what the spec rejects is refused: every
POST/PUT body of every operation, with wrong JSON types, nulls and missing keys at every level,
answers 4xx (never a 500 ``server_error``), and wherever Hetzner's OpenAPI document rejects the
body the answer is a Hetzner-format error (``error.code`` and ``error.message``).

Plain ``requests`` against a localcloud of its own (bodies hcloud-python would never send),
seeded and bounded: a few thousand requests, well under a minute.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import TOKEN, LocalCloud, start_localcloud
from tests.spec import Spec

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ fuzz@nornos"
SEED = 20260708
MAX_MUTATIONS_PER_OPERATION = 48
# Values of the wrong type (and a few awkward ones of the right type) put at every key.
WRONG: list[Any] = [None, 0, -1, 2**64, 1.5, True, "", "x", "\u00b2", "10.0.0.0/33", [], [None], [{}], {},
                    {"k": []}, "MISSING"]
WHOLE_BODIES: list[Any] = [None, [], [{}], "x", 1, True, {}, {"": None}]


class Api:
    def __init__(self, lc: LocalCloud) -> None:
        self.base = lc.endpoint
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"
        self.failures: list[str] = []
        self.sent = 0

    def call(self, method: str, path: str, body: Any = None, *, raw: bool = False) -> requests.Response:
        kwargs: dict[str, Any] = {"timeout": 10}
        if raw:  # the body as JSON text, whatever it is: json=None would send no body at all
            kwargs["data"] = json.dumps(body)
            kwargs["headers"] = {"Content-Type": "application/json"}
        elif body is not None:
            kwargs["json"] = body
        resp = self.session.request(method, self.base + path, **kwargs)
        self.sent += 1
        if resp.status_code >= 500:
            self.failures.append(f"{method} {path} {body!r:.300} -> {resp.status_code} {resp.text[:200]}")
        return resp

    def ok(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        resp = self.call(method, path, body)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else {}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path into a JSON document (dict keys and list indexes)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield (*prefix, index)
            yield from _paths(inner, (*prefix, index))


def _mutate(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(body)
    target = out
    for part in path[:-1]:
        target = target[part]
    if value == "MISSING":
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


@pytest.fixture(scope="module")
def fuzz_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    lc = start_localcloud(Path(tmp_path_factory.mktemp("fuzz")) / "state", "--time-scale", "0", "--seed", "7")
    try:
        lc.side("PUT", "config", {"rate_limit": 1_000_000})
        yield lc
    finally:
        lc.stop()


def _operations(api: Api) -> list[tuple[str, str, Callable[[int], Any]]]:
    """(method, path, body(n)) with a valid body for each operation on real resources."""
    key = api.ok("POST", "/ssh_keys", {"name": "key", "public_key": KEY})["ssh_key"]["id"]
    subnet = {"type": "cloud", "ip_range": "10.0.1.0/24", "network_zone": "eu-central"}
    net = api.ok("POST", "/networks", {"name": "net", "ip_range": "10.0.0.0/16", "subnets": [subnet]})["network"]["id"]
    net2 = api.ok("POST", "/networks", {"name": "net2", "ip_range": "10.2.0.0/16", "subnets": [
        {"type": "cloud", "ip_range": "10.2.1.0/24", "network_zone": "eu-central"},
        {"type": "vswitch", "ip_range": "10.2.9.0/24", "network_zone": "eu-central", "vswitch_id": 4711}],
    })["network"]["id"]
    rule = {"direction": "in", "protocol": "tcp", "port": "80-90", "source_ips": ["0.0.0.0/0", "::/0"],
            "destination_ips": [], "description": "web"}
    fw = api.ok("POST", "/firewalls", {"name": "fw", "rules": [rule]})["firewall"]["id"]
    pg = api.ok("POST", "/placement_groups", {"name": "pg", "type": "spread"})["placement_group"]["id"]
    server = {"name": "srv", "server_type": "cx23", "image": "debian-12", "location": "fsn1",
              "networks": [net], "ssh_keys": [key], "labels": {"env": "x"}}
    srv = api.ok("POST", "/servers", server)["server"]
    off = api.ok("POST", "/servers", {**server, "name": "off", "start_after_create": False,
                                      "public_net": {"enable_ipv4": False, "enable_ipv6": True}})["server"]["id"]
    vol = api.ok("POST", "/volumes", {"name": "vol", "size": 10, "location": "fsn1"})["volume"]["id"]
    pip = api.ok("POST", "/primary_ips", {"name": "pip", "type": "ipv4", "location": "fsn1"})["primary_ip"]
    health = {"protocol": "http", "port": 80, "interval": 15, "timeout": 10, "retries": 3,
              "http": {"domain": "example.com", "path": "/", "response": "ok", "status_codes": ["2??"],
                       "tls": False}}
    http = {"cookie_name": "C", "cookie_lifetime": 300, "certificates": [], "redirect_http": False,
            "sticky_sessions": True, "timeout_idle": 50}
    service = {"protocol": "http", "listen_port": 80, "destination_port": 8080, "proxyprotocol": False,
               "health_check": health, "http": http}
    targets = [{"type": "server", "server": {"id": srv["id"]}, "use_private_ip": True},
               {"type": "label_selector", "label_selector": {"selector": "env=x"}, "use_private_ip": False},
               {"type": "ip", "ip": {"ip": "1.2.3.4"}}]
    lb = api.ok("POST", "/load_balancers", {"name": "lb", "load_balancer_type": "lb11", "location": "fsn1",
                                            "network": net, "services": [service]})["load_balancer"]
    image = api.ok("POST", f"/servers/{srv['id']}/actions/create_image", {"type": "snapshot"})["image"]["id"]
    api.ok("GET", "/servers")  # finishes the actions (time scale 0)
    s, lb_id = srv["id"], lb["id"]
    srv_v4, lb_v4 = srv["public_net"]["ipv4"]["ip"], lb["public_net"]["ipv4"]["ip"]
    labels = {"a": "b", "hetzner.x/y": ""}
    q = {"selector": "q"}

    def named(body: dict[str, Any]) -> Callable[[int], Any]:
        return lambda n: {**body, "name": f"{body['name']}-{n}"} if "name" in body else dict(body)

    def fixed(body: Any) -> Callable[[int], Any]:
        return lambda n: copy.deepcopy(body)

    return [
        ("POST", "/ssh_keys", lambda n: {"name": f"k{n}", "labels": labels, "public_key":
                                         f"ssh-ed25519 {base64.b64encode(b'fuzz-%d' % n).decode()} f@n"}),
        ("PUT", f"/ssh_keys/{key}", fixed({"name": "key", "labels": labels})),
        ("POST", "/networks", named({"name": "n", "ip_range": "10.1.0.0/16", "labels": labels,
                                     "expose_routes_to_vswitch": False,
                                     "subnets": [{**subnet, "ip_range": "10.1.1.0/24"},
                                                 {"type": "vswitch", "ip_range": "10.1.9.0/24",
                                                  "network_zone": "eu-central", "vswitch_id": 1}],
                                     "routes": [{"destination": "10.100.0.0/24", "gateway": "10.1.1.10"}]})),
        ("PUT", f"/networks/{net}", fixed({"name": "net", "labels": labels, "expose_routes_to_vswitch": True})),
        ("POST", f"/networks/{net}/actions/add_subnet", fixed({**subnet, "ip_range": "10.0.5.0/24"})),
        ("POST", f"/networks/{net}/actions/delete_subnet", fixed({"ip_range": "10.0.5.0/24"})),
        ("POST", f"/networks/{net}/actions/add_route", fixed({"destination": "10.0.200.0/24",
                                                              "gateway": "10.0.1.50"})),
        ("POST", f"/networks/{net}/actions/delete_route", fixed({"destination": "10.0.200.0/24",
                                                                 "gateway": "10.0.1.50"})),
        ("POST", f"/networks/{net2}/actions/change_ip_range", fixed({"ip_range": "10.2.0.0/15"})),
        ("POST", f"/networks/{net}/actions/change_protection", fixed({"delete": False})),
        ("POST", "/firewalls", named({"name": "f", "labels": labels, "rules": [rule, {
            "direction": "out", "protocol": "icmp", "destination_ips": ["10.0.0.0/8"], "source_ips": [],
            "description": None}], "apply_to": [{"type": "server", "server": {"id": s}},
                                                {"type": "label_selector", "label_selector": {"selector": "a=b"}}]})),
        ("PUT", f"/firewalls/{fw}", fixed({"name": "fw", "labels": labels})),
        ("POST", f"/firewalls/{fw}/actions/set_rules", fixed({"rules": [rule]})),
        ("POST", f"/firewalls/{fw}/actions/apply_to_resources", fixed({"apply_to": [
            {"type": "server", "server": {"id": s}}, {"type": "label_selector", "label_selector": q}]})),
        ("POST", f"/firewalls/{fw}/actions/remove_from_resources", fixed({"remove_from": [
            {"type": "server", "server": {"id": s}}, {"type": "label_selector", "label_selector": q}]})),
        ("POST", "/placement_groups", named({"name": "p", "type": "spread", "labels": labels})),
        ("PUT", f"/placement_groups/{pg}", fixed({"name": "pg", "labels": labels})),
        ("POST", "/servers", named({
            "name": "s", "server_type": "cx23", "image": "debian-12", "location": "fsn1",
            "start_after_create": True, "ssh_keys": [key], "volumes": [], "networks": [net],
            "firewalls": [{"firewall": fw}], "placement_group": pg, "user_data": "#cloud-config\n",
            "labels": labels, "automount": False,
            "public_net": {"enable_ipv4": True, "enable_ipv6": True, "ipv4": None, "ipv6": None}})),
        ("POST", "/servers", named({"name": "d", "server_type": 96, "image": 114690387, "datacenter": "fsn1-dc14",
                                    "volumes": [vol], "automount": True,
                                    "public_net": {"enable_ipv4": False, "enable_ipv6": False, "ipv4": pip["id"]},
                                    "networks": [net2]})),
        ("PUT", f"/servers/{s}", fixed({"name": "srv", "labels": {"env": "x"}})),
        ("POST", f"/servers/{s}/actions/attach_to_network", fixed({"network": net2, "ip": "10.2.1.5",
                                                                   "alias_ips": ["10.2.1.6"],
                                                                   "ip_range": "10.2.1.0/24"})),
        ("POST", f"/servers/{s}/actions/change_alias_ips", fixed({"network": net, "alias_ips": ["10.0.1.100"]})),
        ("POST", f"/servers/{s}/actions/detach_from_network", fixed({"network": net2})),
        ("POST", f"/servers/{s}/actions/change_dns_ptr", fixed({"ip": srv_v4, "dns_ptr": "a.example.com"})),
        ("POST", f"/servers/{s}/actions/change_protection", fixed({"delete": False, "rebuild": False})),
        ("POST", f"/servers/{s}/actions/create_image", fixed({"description": "d", "type": "snapshot",
                                                              "labels": labels})),
        ("POST", f"/servers/{s}/actions/enable_rescue", fixed({"type": "linux64", "ssh_keys": [key]})),
        ("POST", f"/servers/{s}/actions/rebuild", fixed({"image": "debian-12", "user_data": "x"})),
        ("POST", f"/servers/{s}/actions/attach_iso", fixed({"iso": "x"})),
        ("POST", f"/servers/{off}/actions/change_type", fixed({"server_type": "cx33", "upgrade_disk": False})),
        ("POST", f"/servers/{off}/actions/add_to_placement_group", fixed({"placement_group": pg})),
        ("POST", "/volumes", named({"name": "v", "size": 10, "location": "fsn1", "format": "ext4",
                                    "labels": labels})),
        ("POST", "/volumes", named({"name": "w", "size": 10, "server": s, "automount": True})),
        ("PUT", f"/volumes/{vol}", fixed({"name": "vol", "labels": labels})),
        ("POST", f"/volumes/{vol}/actions/attach", fixed({"server": s, "automount": False})),
        ("POST", f"/volumes/{vol}/actions/resize", fixed({"size": 20})),
        ("POST", f"/volumes/{vol}/actions/change_protection", fixed({"delete": False})),
        ("POST", "/primary_ips", named({"name": "p", "type": "ipv6", "location": "fsn1", "assignee_type": "server",
                                        "auto_delete": False, "labels": labels})),
        ("POST", "/primary_ips", named({"name": "q", "type": "ipv4", "location": "fsn1",
                                        "assignee_type": "server", "assignee_id": off})),
        ("PUT", f"/primary_ips/{pip['id']}", fixed({"name": "pip", "labels": labels, "auto_delete": True})),
        ("POST", f"/primary_ips/{pip['id']}/actions/assign", fixed({"assignee_type": "server", "assignee_id": off})),
        ("POST", f"/primary_ips/{pip['id']}/actions/change_dns_ptr", fixed({"ip": pip["ip"], "dns_ptr": "p.example"})),
        ("POST", f"/primary_ips/{pip['id']}/actions/change_protection", fixed({"delete": False})),
        ("POST", "/load_balancers", named({
            "name": "l", "load_balancer_type": "lb11", "location": "fsn1", "algorithm": {"type": "round_robin"},
            "network": net, "public_interface": True, "labels": labels,
            "services": [service, {"protocol": "tcp", "listen_port": 22, "destination_port": 22, "proxyprotocol": False,
                                   "health_check": {"protocol": "tcp", "port": 22, "interval": 15, "timeout": 10,
                                                    "retries": 3}}],
            "targets": targets})),
        ("POST", "/load_balancers", named({"name": "z", "load_balancer_type": 1, "network_zone": "eu-central",
                                           "public_net": {"enabled": True, "ipv4": {"id": 1}}})),
        ("PUT", f"/load_balancers/{lb_id}", fixed({"name": "lb", "labels": labels})),
        ("POST", f"/load_balancers/{lb_id}/actions/add_service", fixed(
            {**service, "protocol": "https", "listen_port": 443,
             "http": {**http, "redirect_http": True}})),
        ("POST", f"/load_balancers/{lb_id}/actions/update_service", fixed(service)),
        ("POST", f"/load_balancers/{lb_id}/actions/delete_service", fixed({"listen_port": 443})),
        ("POST", f"/load_balancers/{lb_id}/actions/attach_to_network", fixed(
            {"network": net2, "ip": "10.2.1.20", "ip_range": "10.2.1.0/24"})),
        ("POST", f"/load_balancers/{lb_id}/actions/add_target", fixed(targets[0])),
        ("POST", f"/load_balancers/{lb_id}/actions/add_target", fixed(targets[1])),
        ("POST", f"/load_balancers/{lb_id}/actions/add_target", fixed({"type": "ip", "ip": {"ip": "10.2.9.9"}})),
        ("POST", f"/load_balancers/{lb_id}/actions/remove_target", fixed(targets[0])),
        ("POST", f"/load_balancers/{lb_id}/actions/detach_from_network", fixed({"network": net2})),
        ("POST", f"/load_balancers/{lb_id}/actions/change_algorithm", fixed({"type": "least_connections"})),
        ("POST", f"/load_balancers/{lb_id}/actions/change_dns_ptr", fixed({"ip": lb_v4, "dns_ptr": "l.example"})),
        ("POST", f"/load_balancers/{lb_id}/actions/change_type", fixed({"load_balancer_type": "lb21"})),
        ("POST", f"/load_balancers/{lb_id}/actions/change_protection", fixed({"delete": False})),
        ("PUT", f"/images/{image}", fixed({"description": "d", "type": "snapshot", "labels": labels})),
        ("POST", f"/images/{image}/actions/change_protection", fixed({"delete": False})),
    ]


def _hetzner_error(resp: requests.Response) -> bool:
    try:
        error = resp.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error.get("code"), str) and bool(error["code"]) and isinstance(error.get("message"), str)


def test_wrong_json_types_in_every_body_answer_4xx(fuzz_cloud: LocalCloud, spec_document: Spec) -> None:
    api = Api(fuzz_cloud)
    rng = random.Random(SEED)
    operations = _operations(api)
    assert not api.failures, api.failures
    invalid_seeds = {f"{m} {p}": spec_document.check_request(m, p, make(0)) for m, p, make in operations}
    assert {k: v for k, v in invalid_seeds.items() if v} == {}, "a seed body the spec rejects"
    accepted: list[str] = []  # bodies the spec rejects that got no Hetzner-format 4xx
    refused = 0

    def send(method: str, path: str, body: Any) -> None:
        nonlocal refused
        resp = api.call(method, path, body, raw=True)
        problems = spec_document.check_request(method, path, body)
        if not problems:
            return
        if 400 <= resp.status_code < 500 and _hetzner_error(resp):
            refused += 1
            return
        accepted.append(f"{method} {path} {body!r:.300} -> {resp.status_code}: the spec says {problems[0]}")

    for method, path, make in operations:
        n = 0
        api.call(method, path, make(n))  # the valid body itself
        for whole in WHOLE_BODIES:
            send(method, path, whole)
        mutations = [(p, v) for p in _paths(make(0)) for v in WRONG]
        if len(mutations) > MAX_MUTATIONS_PER_OPERATION:
            mutations = rng.sample(mutations, MAX_MUTATIONS_PER_OPERATION)
        for key_path, value in mutations:
            n += 1
            send(method, path, _mutate(make(n), key_path, value))
        api.call("GET", "/servers")  # renders everything the mutations created or changed
    print(f"{refused} bodies the spec rejects were refused")
    assert refused > 1000
    assert not accepted, f"{len(accepted)} bodies the spec rejects were not refused:\n" + "\n".join(accepted[:40])
    for collection in ("servers", "networks", "firewalls", "load_balancers", "volumes", "primary_ips", "images",
                       "placement_groups", "ssh_keys"):
        api.call("GET", f"/{collection}?per_page=50")
    assert api.sent < 4000
    assert not api.failures, f"{len(api.failures)} answers >= 500:\n" + "\n".join(api.failures[:40])
    # nor in the completion handlers of the actions all this started
    assert "Traceback" not in fuzz_cloud.log.read_text(), fuzz_cloud.log.read_text()[-3000:]


LISTS = ("/actions", "/datacenters", "/firewalls", "/images", "/load_balancer_types", "/load_balancers",
         "/locations", "/networks", "/placement_groups", "/primary_ips", "/server_types", "/servers", "/ssh_keys",
         "/volumes", "/servers/actions", "/volumes/actions", "/networks/actions", "/firewalls/actions")
QUERY_KEYS = ("page", "per_page", "sort", "label_selector", "name", "status", "type", "id", "ip", "fingerprint",
              "architecture", "include_deprecated", "bound_to")
QUERY_VALUES = ("0", "\u00b2", "99999999999999999999", "a in (")


def test_wrong_query_parameters_of_every_list_answer_4xx(fuzz_cloud: LocalCloud) -> None:
    api = Api(fuzz_cloud)
    for path in LISTS:
        for key in QUERY_KEYS:
            for value in QUERY_VALUES:
                params = {"id": "1", "per_page": "1", key: value}  # /actions needs an id
                resp = api.session.get(api.base + path, params=params, timeout=10)
                api.sent += 1
                if resp.status_code >= 500:
                    api.failures.append(f"GET {path}?{key}={value!r} -> {resp.status_code} {resp.text[:200]}")
    assert not api.failures, "\n".join(api.failures[:40])
