"""Images through the real hcloud-python client: system images, snapshots and backups."""

from __future__ import annotations

from hcloud import Client
from hcloud.images import Image

from tests.api.test_servers import api_error, create
from tests.conftest import LocalCloud, SpecRecorder


def test_system_images_per_architecture(client: Client, recorder: SpecRecorder) -> None:
    system = client.images.get_all(type=["system"])
    names = {(i.name, i.architecture) for i in system}
    assert {("debian-12", "x86"), ("debian-12", "arm"), ("ubuntu-24.04", "x86")} <= names
    assert all(i.status == "available" and i.created_from is None and i.bound_to is None for i in system)
    arm = client.images.get_by_name_and_architecture("debian-12", "arm")
    x86 = client.images.get_by_name_and_architecture("debian-12", "x86")
    assert arm.id != x86.id and (arm.os_flavor, arm.os_version) == ("debian", "12")
    assert client.images.get_by_id(x86.id).name == "debian-12"
    assert {i.architecture for i in client.images.get_all(architecture="arm")} == {"arm"}

    assert api_error(client.images.update, x86, description="mine").code == "forbidden"
    assert api_error(client.images.delete, x86).code == "forbidden"
    assert api_error(client.images.get_by_id, 1).code == "not_found"
    with recorder.invalid_requests():  # not an image type of the spec
        assert api_error(client.images.get_all, type=["weird"]).code == "invalid_input"


def test_snapshot_update_filter_protect_delete(client: Client) -> None:
    server = create(client, "src")
    snap = client.servers.create_image(server, description="first", labels={"keep": "yes"})
    snap.action.wait_until_finished()
    client.servers.enable_backup(server).wait_until_finished()
    backup = client.servers.create_image(server, type="backup")
    backup.action.wait_until_finished()

    assert [i.id for i in client.images.get_all(type=["snapshot"])] == [snap.image.id]
    assert [i.id for i in client.images.get_all(bound_to=[str(server.id)])] == [backup.image.id]
    assert [i.id for i in client.images.get_all(label_selector="keep=yes")] == [snap.image.id]
    image = client.images.get_by_id(snap.image.id)
    assert (image.type, image.status, image.architecture, image.disk_size) == ("snapshot", "available", "x86", 40)
    assert image.image_size is not None and image.created_from.name == "src"

    updated = client.images.update(image, description="second", labels={"keep": "no"})
    assert (updated.description, updated.labels) == ("second", {"keep": "no"})
    converted = client.images.update(Image(id=backup.image.id), type="snapshot")
    assert (converted.type, converted.bound_to) == ("snapshot", None)

    client.images.change_protection(image, delete=True).wait_until_finished()
    assert api_error(client.images.delete, image).code == "protected"
    client.images.change_protection(image, delete=False).wait_until_finished()
    assert client.images.delete(image) is True
    assert api_error(client.images.get_by_id, image.id).code == "not_found"

    commands = [a.command for a in client.images.get_actions_list(converted).actions]
    assert commands == ["create_image"]
    body = client.request("GET", "/images", params={"type": "snapshot", "sort": "id:desc"})
    assert [i["id"] for i in body["images"]] == [backup.image.id]


def test_creating_image_cannot_serve_a_server(client: Client, localcloud: LocalCloud) -> None:
    server = create(client, "src")
    before = localcloud.side("GET", "config")["time_scale"]
    localcloud.side("PUT", "config", {"time_scale": 20})  # keep the image in status creating
    try:
        resp = client.servers.create_image(server)
    finally:
        localcloud.side("PUT", "config", {"time_scale": before})
    assert resp.image.status == "creating" and resp.image.description
    exc = api_error(create, client, "early", image=str(resp.image.id))
    assert exc.code == "invalid_input"
    assert api_error(client.servers.power_off, server).code == "locked"
