"""What a provisioning tool does: parallel workers, batched action polling, retried and
adopted creates. Each worker thread has its own hcloud-python client, as a thread pool would."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import requests
from hcloud import APIException, Client
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.networks import BoundNetwork, NetworkSubnet
from hcloud.server_types import ServerType

from tests.conftest import LocalCloud, SpecRecorder, make_client

WORKERS = 8
T = TypeVar("T")


def _network(client: Client) -> BoundNetwork:
    return client.networks.create(name="net", ip_range="10.0.0.0/16", subnets=[
        NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="eu-central")])


def _parallel(localcloud: LocalCloud, recorder: SpecRecorder, count: int,
              work: Callable[[Client, int], T]) -> list[T | APIException]:
    """Run work(client, i) for i < count on WORKERS threads, each thread with its own client."""
    clients: dict[int, Client] = {}

    def run(i: int) -> T | APIException:
        client = clients.setdefault(i % WORKERS, make_client(localcloud, recorder))
        try:
            return work(client, i)
        except APIException as exc:
            return exc

    for slot in range(WORKERS):
        clients[slot] = make_client(localcloud, recorder)
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(run, range(count)))


def wait_batched(client: Client, ids: list[int], timeout: float = 30.0) -> dict[int, dict[str, Any]]:
    """Poll GET /actions?id=..&id=.. in batches of 25 (as hcloud-go does) until none runs."""
    done: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(ids):
        assert time.monotonic() < deadline, f"actions still running: {set(ids) - set(done)}"
        pending = [i for i in ids if i not in done]
        for start in range(0, len(pending), 25):
            batch = pending[start:start + 25]
            reply = client.request("GET", "/actions", params={"id": batch})  # id is its only parameter
            assert {a["id"] for a in reply["actions"]} == set(batch)
            done.update({a["id"]: a for a in reply["actions"] if a["status"] != "running"})
        time.sleep(0.05)
    return done


def test_twenty_servers_created_in_parallel_on_one_network(client: Client, localcloud: LocalCloud,
                                                          recorder: SpecRecorder) -> None:
    net = _network(client)
    log_start = len(localcloud.requests_log())

    def create(c: Client, i: int) -> list[int]:
        resp = c.servers.create(name=f"web-{i}", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                location=Location(name="fsn1"), networks=[net], labels={"fleet": "web"})
        return [resp.action.id] + [a.id for a in resp.next_actions]

    results = _parallel(localcloud, recorder, 20, create)
    assert all(isinstance(r, list) for r in results), results
    action_ids = [i for r in results if isinstance(r, list) for i in r]
    assert len(set(action_ids)) == len(action_ids) == 60  # create, start, attach_to_network each
    finished = wait_batched(client, action_ids)
    assert {a["status"] for a in finished.values()} == {"success"}

    servers = client.servers.get_all(label_selector="fleet=web")
    assert sorted(s.name for s in servers) == sorted(f"web-{i}" for i in range(20))
    assert {s.status for s in servers} == {"running"}
    v4 = [s.public_net.ipv4.ip for s in servers]
    v6 = [s.public_net.ipv6.ip for s in servers]
    private = [p.ip for s in servers for p in s.private_net]
    assert len(set(v4)) == len(set(v6)) == len(set(private)) == 20
    subnet = ipaddress.ip_network("10.0.1.0/24")
    assert all(ipaddress.ip_address(ip) in subnet for ip in private)
    assert sorted(s.id for s in client.networks.get_by_id(net.id).servers) == sorted(s.id for s in servers)
    log = localcloud.requests_log()[log_start:]
    assert not [e for e in log if e["status"] >= 500 or e["status"] == 0], "server errors under parallel load"


def test_the_same_name_created_in_parallel_exists_once(client: Client, localcloud: LocalCloud,
                                                      recorder: SpecRecorder) -> None:
    def create(c: Client, i: int) -> int:
        return int(c.volumes.create(name="data", size=10, location=Location(name="fsn1")).volume.id)

    results = _parallel(localcloud, recorder, 8, create)
    created = [r for r in results if isinstance(r, int)]
    errors = [r for r in results if isinstance(r, APIException)]
    assert len(created) == 1 and [e.code for e in errors] == ["uniqueness_error"] * 7
    assert [v.id for v in client.volumes.get_all()] == created


def test_create_answered_with_conflict_is_retried_and_made_once(client: Client, localcloud: LocalCloud) -> None:
    client._client._retry_interval_func = lambda retries: 0.01  # the client's backoff, shortened
    localcloud.side("PUT", "faults", {"errors": [{"method": "POST", "path": "/servers", "code": "conflict",
                                                  "times": 2}]})
    resp = client.servers.create(name="retry", server_type=ServerType(name="cx23"), image=Image(name="debian-12"))
    assert [s.id for s in client.servers.get_all()] == [resp.server.id]
    statuses = [e["status"] for e in localcloud.requests_log() if e["route"] == "POST /servers"]
    assert statuses == [409, 409, 201]
    localcloud.side("PUT", "faults", {})


def test_reply_lost_after_create_then_the_retry_is_a_uniqueness_error_to_adopt(client: Client,
                                                                               localcloud: LocalCloud) -> None:
    localcloud.side("PUT", "faults", {"drops": [{"method": "POST", "path": "/servers", "times": 1,
                                                 "after": True}]})
    with pytest.raises(requests.exceptions.ConnectionError):
        client.servers.create(name="lost", server_type=ServerType(name="cx23"), image=Image(name="debian-12"))
    with pytest.raises(APIException) as exc:  # the create did happen: adopt it
        client.servers.create(name="lost", server_type=ServerType(name="cx23"), image=Image(name="debian-12"))
    assert exc.value.code == "uniqueness_error"
    assert exc.value.details == {"fields": [{"name": "name"}]}
    adopted = client.servers.get_by_name("lost")
    assert adopted is not None and [s.id for s in client.servers.get_all()] == [adopted.id]
    log = [(e["status"], e["code"]) for e in localcloud.requests_log() if e["route"] == "POST /servers"]
    assert log == [(0, "dropped"), (409, "uniqueness_error")]
    assert localcloud.side("GET", "faults")["drops"][0]["after"] is True
    localcloud.side("PUT", "faults", {})


def test_reply_dropped_before_handling_creates_nothing(client: Client, localcloud: LocalCloud) -> None:
    localcloud.side("PUT", "faults", {"drops": [{"method": "POST", "path": "/ssh_keys", "times": 1}]})
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ x@y"
    with pytest.raises(requests.exceptions.ConnectionError):
        client.ssh_keys.create(name="k", public_key=key)
    assert client.ssh_keys.get_all() == []
    assert client.ssh_keys.create(name="k", public_key=key).name == "k"
    localcloud.side("PUT", "faults", {})
