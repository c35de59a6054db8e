"""A localcloud with a state directory survives SIGTERM and restart: same resources, same ids,
running actions finished afterwards."""

from __future__ import annotations

from pathlib import Path

from hcloud.networks import NetworkSubnet

from tests.api.test_core import ssh_key
from tests.conftest import SpecRecorder, make_client, start_localcloud


def test_resources_and_running_actions_survive_a_restart(tmp_path: Path, recorder: SpecRecorder) -> None:
    state = tmp_path / "state"
    # add_subnet takes 0.05 s in the fast profile: x30 = 1.5 s, still running when we stop
    first = start_localcloud(state, "--time-scale", "30")
    try:
        client = make_client(first, recorder)
        keys = [client.ssh_keys.create(name=f"k{i}", public_key=ssh_key(i), labels={"i": str(i)}) for i in range(3)]
        client.ssh_keys.delete(keys[1])
        network = client.networks.create(name="net", ip_range="10.0.0.0/16")
        action = client.networks.add_subnet(network, NetworkSubnet(type="cloud", network_zone="eu-central",
                                                                   ip_range="10.0.1.0/24"))
        assert client.actions.get_by_id(action.id).status == "running"
    finally:
        first.stop()
    assert first.proc.returncode == 0  # SIGTERM is a clean shutdown

    second = start_localcloud(state, "--time-scale", "30")
    try:
        client = make_client(second, recorder)
        assert [(k.id, k.name, k.labels) for k in client.ssh_keys.get_all()] == [
            (keys[0].id, "k0", {"i": "0"}), (keys[2].id, "k2", {"i": "2"})]
        assert client.ssh_keys.get_by_id(keys[0].id).fingerprint == keys[0].fingerprint
        assert client.networks.get_by_id(network.id).name == "net"
        restored = client.actions.get_by_id(action.id)
        assert restored.command == "add_subnet"
        restored.wait_until_finished()  # finished by the restarted engine
        assert client.actions.get_by_id(action.id).status == "success"
        assert [s.ip_range for s in client.networks.get_by_id(network.id).subnets] == ["10.0.1.0/24"]
        new = client.ssh_keys.create(name="after", public_key=ssh_key(9))
        assert new.id == keys[2].id + 1  # id counters persisted too: no id is reused
    finally:
        second.stop()
    assert not recorder.problems, recorder.problems
