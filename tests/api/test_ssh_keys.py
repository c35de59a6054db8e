"""SSH keys through the real hcloud-python client."""

from __future__ import annotations

import pytest
from hcloud import APIException, Client


def test_create_get_update_delete(client: Client, ssh_public_key: str) -> None:
    key = client.ssh_keys.create(name="admin", public_key=ssh_public_key, labels={"nornos.io/env": "dev"})
    assert key.fingerprint and len(key.fingerprint.split(":")) == 16
    assert client.ssh_keys.get_by_name("admin").id == key.id
    assert client.ssh_keys.get_by_fingerprint(key.fingerprint).id == key.id
    updated = client.ssh_keys.update(key, name="admin2", labels={"a": "b"})
    assert (updated.name, updated.labels) == ("admin2", {"a": "b"})
    assert client.ssh_keys.delete(key) is True
    with pytest.raises(APIException) as exc:
        client.ssh_keys.get_by_id(key.id)
    assert exc.value.code == "not_found"


def test_name_and_fingerprint_are_unique(client: Client, ssh_public_key: str) -> None:
    client.ssh_keys.create(name="admin", public_key=ssh_public_key)
    with pytest.raises(APIException) as exc:
        client.ssh_keys.create(name="admin", public_key=ssh_public_key)
    assert exc.value.code == "uniqueness_error"
    with pytest.raises(APIException) as exc:
        client.ssh_keys.create(name="other", public_key=ssh_public_key)
    assert exc.value.code == "uniqueness_error"
    assert exc.value.details == {"fields": [{"name": "public_key"}]}


def test_bad_key_and_labels_are_invalid_input(client: Client) -> None:
    with pytest.raises(APIException) as exc:
        client.ssh_keys.create(name="x", public_key="not a key", labels={"hetzner.cloud/x": "y"})
    assert exc.value.code == "invalid_input"
    names = {f["name"] for f in exc.value.details["fields"]}
    assert names == {"public_key", "labels"}


@pytest.mark.parametrize("public_key", ["", "   ", "ssh-ed25519", "ssh-ed25519 !!!not-base64"])
def test_an_empty_or_malformed_key_is_refused_never_stored_without_a_fingerprint(client: Client,
                                                                               public_key: str) -> None:
    with pytest.raises(APIException) as exc:
        client.ssh_keys.create(name="empty", public_key=public_key)
    assert exc.value.code == "invalid_input"
    assert exc.value.details == {"fields": [{"name": "public_key", "messages": ["is not a valid SSH public key"]}]}
    assert client.ssh_keys.get_all() == []
