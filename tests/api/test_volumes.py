"""Volumes through the real hcloud-python client (every exchange checked against the spec)."""

from __future__ import annotations

from typing import Any

import pytest
from hcloud import APIException, Client
from hcloud.actions import ActionFailedException
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer
from hcloud.volumes import BoundVolume

from tests.conftest import SpecRecorder


def _error(fn: Any, *args: Any, **kwargs: Any) -> APIException:
    with pytest.raises(APIException) as exc:
        fn(*args, **kwargs)
    return exc.value


def _volume(client: Client, name: str = "data", size: int = 10, location: str = "fsn1",
            **kwargs: Any) -> BoundVolume:
    created = client.volumes.create(size=size, name=name, location=Location(name=location), **kwargs)
    created.action.wait_until_finished()
    return client.volumes.get_by_id(created.volume.id)


def _server(client: Client, name: str = "web", location: str = "fsn1") -> BoundServer:
    created = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                    location=Location(name=location))
    created.action.wait_until_finished()
    for action in created.next_actions:
        action.wait_until_finished()
    return client.servers.get_by_id(created.server.id)


# -- without servers --------------------------------------------------------------------------
def test_create_in_location_lifecycle(client: Client) -> None:
    created = client.volumes.create(size=20, name="data", location=Location(name="nbg1"), format="xfs",
                                    labels={"role": "db"})
    volume = created.volume
    assert created.action.command == "create_volume"
    assert created.next_actions == []
    assert volume.status == "creating"
    assert volume.server is None
    assert volume.location.name == "nbg1"
    assert volume.format == "xfs"
    assert volume.linux_device == f"/dev/disk/by-id/scsi-0HC_Volume_{volume.id}"
    created.action.wait_until_finished()
    volume = client.volumes.get_by_id(volume.id)
    assert volume.status == "available"
    assert volume.size == 20
    assert volume.protection == {"delete": False}

    updated = client.volumes.update(volume, name="data2", labels={"role": "cache"})
    assert (updated.name, updated.labels) == ("data2", {"role": "cache"})
    assert client.volumes.get_by_name("data2").id == volume.id
    assert client.volumes.delete(volume) is True
    assert _error(client.volumes.get_by_id, volume.id).code == "not_found"


def test_list_filters_and_sort(client: Client, recorder: SpecRecorder) -> None:
    a = _volume(client, "alpha", labels={"env": "prod"})
    b = _volume(client, "beta", labels={"env": "dev"})
    assert [v.id for v in client.volumes.get_all(label_selector="env=prod")] == [a.id]
    assert [v.id for v in client.volumes.get_all(status=["available"])] == [a.id, b.id]
    assert client.volumes.get_all(status=["creating"]) == []
    listed = client.request("GET", "/volumes", params={"sort": "name:desc"})["volumes"]
    assert [v["id"] for v in listed] == [b.id, a.id]
    assert client.volumes.get_by_name("beta").id == b.id
    with recorder.invalid_requests():  # neither is a value the spec allows
        assert _error(client.request, "GET", "/volumes", params={"sort": "size"}).code == "invalid_input"
        assert _error(client.request, "GET", "/volumes", params={"status": "gone"}).code == "invalid_input"


def test_create_validation(client: Client) -> None:
    exc = _error(client.volumes.create, size=5, name="small", location=Location(name="fsn1"))
    assert exc.code == "invalid_input"
    assert [f["name"] for f in exc.details["fields"]] == ["size"]
    assert _error(client.volumes.create, size=10241, name="huge", location=Location(name="fsn1")).code == \
        "invalid_input"
    assert _error(client.volumes.create, size=10, name="x", location=Location(name="fsn1"),
                  format="btrfs").code == "invalid_input"
    assert _error(client.volumes.create, size=10, name="x", location=Location(name="mars1")).code == \
        "invalid_input"
    assert _error(client.volumes.create, size=10, name="-bad-", location=Location(name="fsn1")).code == \
        "invalid_input"
    # hcloud-python refuses both/neither itself; the API answers invalid_input as well
    for body in ({"name": "x", "size": 10}, {"name": "x", "size": 10, "location": "fsn1", "server": 1}):
        assert _error(client.request, "POST", "/volumes", json=body).code == "invalid_input"
    assert _error(client.request, "POST", "/volumes",
                  json={"name": "x", "size": 10, "location": "fsn1", "automount": True}).code == "invalid_input"
    _volume(client, "dup")
    assert _error(client.volumes.create, size=10, name="dup", location=Location(name="fsn1")).code == \
        "uniqueness_error"


def test_resize_only_grows(client: Client) -> None:
    volume = _volume(client, size=20)
    volume.resize(50).wait_until_finished()
    assert client.volumes.get_by_id(volume.id).size == 50
    exc = _error(volume.resize, 40)
    assert exc.code == "invalid_input"
    assert _error(volume.resize, 10241).code == "invalid_input"
    exc = _error(client.request, "POST", f"/volumes/{volume.id}/actions/resize", json={"size": 60.5})
    assert exc.code == "volume_size_not_multiple_of_gb"
    assert client.volumes.get_by_id(volume.id).size == 50


def test_protection_blocks_delete(client: Client) -> None:
    volume = _volume(client)
    action = volume.change_protection(delete=True)
    assert action.status == "success"
    assert client.volumes.get_by_id(volume.id).protection == {"delete": True}
    exc = _error(volume.delete)
    assert exc.code == "protected"
    volume.change_protection(delete=False)
    assert volume.delete() is True


def test_locked_while_creating(client: Client, localcloud: Any) -> None:
    localcloud.side("PUT", "config", {"time_scale": 20})  # actions take ~1 s: the lock is observable
    created = client.volumes.create(size=10, name="busy", location=Location(name="fsn1"))
    # the create action is still running: the volume is locked
    assert _error(created.volume.resize, 20).code == "locked"
    created.action.wait_until_finished()
    created.volume.resize(20).wait_until_finished()


def test_actions_sub_resources(client: Client) -> None:
    volume = _volume(client)
    volume.resize(30).wait_until_finished()
    commands = [a.command for a in volume.get_actions(sort=["id"])]
    assert commands == ["create_volume", "resize_volume"]
    everything = client.volumes.actions.get_all()
    assert {a.command for a in everything} >= {"create_volume", "resize_volume"}
    one = client.volumes.actions.get_by_id(everything[0].id)
    assert one.id == everything[0].id


def test_detach_unattached_and_unknown_server(client: Client) -> None:
    volume = _volume(client)
    assert _error(volume.detach).code == "volume_not_attached"
    exc = _error(client.request, "POST", f"/volumes/{volume.id}/actions/attach", json={"server": 999999})
    assert exc.code == "invalid_input"
    assert _error(client.volumes.get_by_id, 424242).code == "not_found"


def test_project_limit_and_size_limit(client: Client, localcloud: Any) -> None:
    localcloud.side("PUT", "config", {"limits": {"volumes": 2, "volume_size_gb": 100}})
    _volume(client, "v1")
    _volume(client, "v2")
    exc = _error(client.volumes.create, size=10, name="v3", location=Location(name="fsn1"))
    assert exc.code == "resource_limit_exceeded"
    assert exc.details == {"limits": [{"name": "volumes"}]}
    assert _error(client.volumes.get_by_name("v1").resize, 101).code == "invalid_input"


def test_failed_resize_keeps_size(client: Client, localcloud: Any) -> None:
    volume = _volume(client, size=10)
    localcloud.side("PUT", "faults", {"actions": {"resize_volume": 1.0}})
    action = volume.resize(20)
    with pytest.raises(ActionFailedException):
        action.wait_until_finished()
    assert client.volumes.get_by_id(volume.id).size == 10


# -- with servers ---------------------------------------------------------------------------
def test_create_attached_to_server(client: Client) -> None:
    server = _server(client)
    created = client.volumes.create(size=10, name="data", server=server, automount=True, format="ext4")
    assert created.volume.server is not None and created.volume.server.id == server.id
    assert created.volume.location.name == "fsn1"
    assert [a.command for a in created.next_actions] == ["attach_volume"]
    created.action.wait_until_finished()
    created.next_actions[0].wait_until_finished()
    volume = client.volumes.get_by_id(created.volume.id)
    assert volume.server is not None and volume.server.id == server.id
    assert volume.status == "available"
    assert [v.id for v in client.servers.get_by_id(server.id).volumes] == [volume.id]
    # attached volumes cannot be deleted
    assert _error(volume.delete).code == "service_error"


def test_attach_detach(client: Client) -> None:
    server = _server(client)
    other = _server(client, "other")
    volume = _volume(client)
    volume.attach(server, automount=False).wait_until_finished()
    volume = client.volumes.get_by_id(volume.id)
    assert volume.server is not None and volume.server.id == server.id
    assert _error(volume.attach, other).code == "volume_already_attached"
    volume.detach().wait_until_finished()
    assert client.volumes.get_by_id(volume.id).server is None
    assert client.servers.get_by_id(server.id).volumes == []
    assert volume.delete() is True


def test_attach_needs_same_location(client: Client) -> None:
    server = _server(client, location="fsn1")
    volume = _volume(client, location="hel1")
    assert _error(volume.attach, server).code == "invalid_input"
    assert client.volumes.get_by_id(volume.id).server is None


def test_server_deleted_detaches(client: Client) -> None:
    server = _server(client)
    volume = _volume(client)
    volume.attach(server).wait_until_finished()
    client.servers.delete(server).wait_until_finished()
    volume = client.volumes.get_by_id(volume.id)
    assert volume.server is None
    assert volume.delete() is True
