"""Conformance with Hetzner's official OpenAPI document, and proof that the check bites.

Every API test already validates each exchange through the ``client`` fixture; these tests
make sure that machinery is live (it checks, and it catches a wrong shape) and skip with
the reason when the spec file is absent.
"""

from __future__ import annotations

import pytest
from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType

from tests.conftest import SpecRecorder
from tests.spec import SPEC_PATH, Spec

pytestmark = pytest.mark.skipif(not SPEC_PATH.exists(), reason=f"official spec not found at {SPEC_PATH}")


def test_the_checker_catches_wrong_shapes(spec: Spec) -> None:
    good = {"ssh_key": {"id": 1, "name": "a", "fingerprint": "b", "public_key": "c", "labels": {},
                        "created": "2026-01-01T00:00:00+00:00"}}
    assert spec.check_response("GET", "/ssh_keys/1", 200, good) == []
    missing = {"ssh_key": {k: v for k, v in good["ssh_key"].items() if k != "fingerprint"}}
    assert any("fingerprint" in p for p in spec.check_response("GET", "/ssh_keys/1", 200, missing))
    wrong_type = {"ssh_key": {**good["ssh_key"], "id": "1"}}
    assert spec.check_response("GET", "/ssh_keys/1", 200, wrong_type)
    assert spec.check_response("GET", "/ssh_keys/1", 201, good)  # undocumented status
    assert spec.check_request("POST", "/servers", {"name": "x", "server_type": "cx23", "image": "debian-12",
                                                   "networks": ["not-an-id"]})
    assert spec.check_response("GET", "/no_such_thing", 200, {}) != []


def test_a_whole_lifecycle_is_checked(client: Client, recorder: SpecRecorder, ssh_public_key: str) -> None:
    key = client.ssh_keys.create(name="k", public_key=ssh_public_key)
    created = client.servers.create(name="conformance-1", server_type=ServerType(name="cx23"),
                                    image=Image(name="debian-12"), ssh_keys=[key])
    created.action.wait_until_finished()
    for action in created.next_actions:
        action.wait_until_finished()
    client.servers.get_all()
    client.servers.delete(created.server).wait_until_finished()
    assert recorder.checked >= 6
    assert recorder.problems == []
