"""Placement groups through the real hcloud-python client."""

from __future__ import annotations

from typing import Any

import pytest
from hcloud import APIException, Client
from hcloud.images.domain import Image
from hcloud.server_types.domain import ServerType
from hcloud.servers.client import BoundServer


def api_error(fn: Any, *args: Any, **kwargs: Any) -> APIException:
    with pytest.raises(APIException) as exc:
        fn(*args, **kwargs)
    return exc.value


def test_lifecycle(client: Client) -> None:
    created = client.placement_groups.create(name="spread-1", type="spread", labels={"nornos.io/tier": "db"})
    assert created.action is None
    group = created.placement_group
    assert (group.name, group.type, group.servers, group.labels) == ("spread-1", "spread", [],
                                                                     {"nornos.io/tier": "db"})
    assert client.placement_groups.get_by_id(group.id).name == "spread-1"
    assert client.placement_groups.get_by_name("spread-1").id == group.id
    assert [g.id for g in client.placement_groups.get_list(type="spread").placement_groups] == [group.id]
    assert [g.id for g in client.placement_groups.get_all(label_selector="nornos.io/tier=db")] == [group.id]
    assert client.placement_groups.get_all(label_selector="nornos.io/tier=web") == []

    updated = client.placement_groups.update(group, name="spread-2", labels={"a": "b"})
    assert (updated.name, updated.labels) == ("spread-2", {"a": "b"})
    assert client.placement_groups.delete(updated) is True
    assert api_error(client.placement_groups.get_by_id, group.id).code == "not_found"


def test_names_are_unique_and_sorting(client: Client) -> None:
    client.placement_groups.create(name="b", type="spread")
    a = client.placement_groups.create(name="a", type="spread").placement_group
    assert api_error(client.placement_groups.create, name="b", type="spread").code == "uniqueness_error"
    assert api_error(client.placement_groups.update, a, name="b").code == "uniqueness_error"
    assert [g.name for g in client.placement_groups.get_all(sort=["name:asc"])] == ["a", "b"]
    assert [g.name for g in client.placement_groups.get_all(sort=["id:desc"])] == ["a", "b"]


def test_bad_labels_are_invalid_input(client: Client) -> None:
    exc = api_error(client.placement_groups.create, name="x", type="spread", labels={"hetzner.cloud/x": "y"})
    assert exc.code == "invalid_input"
    assert {f["name"] for f in exc.details["fields"]} == {"labels"}


def test_unknown_group(client: Client) -> None:
    assert api_error(client.placement_groups.get_by_id, 4711).code == "not_found"


def make_server(client: Client, name: str, **kwargs: Any) -> BoundServer:
    created = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                    **kwargs)
    for action in [created.action, *created.next_actions]:
        action.wait_until_finished()
    return client.servers.get_by_id(created.server.id)


def test_servers_are_computed_and_keep_the_group(client: Client) -> None:
    group = client.placement_groups.create(name="spread", type="spread").placement_group
    one = make_server(client, "one", placement_group=group)
    two = make_server(client, "two", placement_group=group)
    make_server(client, "loner")
    assert sorted(client.placement_groups.get_by_id(group.id).servers) == sorted([one.id, two.id])
    assert client.servers.get_by_id(one.id).placement_group.id == group.id

    exc = api_error(client.placement_groups.delete, group)
    assert exc.code == "resource_in_use"
    one.delete().wait_until_finished()
    two.delete().wait_until_finished()
    assert client.placement_groups.get_by_id(group.id).servers == []
    assert client.placement_groups.delete(group) is True


def test_a_spread_group_holds_at_most_10_servers(client: Client) -> None:
    group = client.placement_groups.create(name="spread", type="spread").placement_group
    for i in range(10):
        client.servers.create(name=f"s{i}", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                              placement_group=group)
    exc = api_error(client.servers.create, name="s10", server_type=ServerType(name="cx23"),
                    image=Image(name="debian-12"), placement_group=group)
    assert exc.code == "placement_error"
    assert len(client.placement_groups.get_by_id(group.id).servers) == 10
