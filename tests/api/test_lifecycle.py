"""Action lifecycle across families: next actions that depend on their create, locks that span
the resources of an action, actions that outlive a restart, and what a server delete leaves."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hcloud import APIException, Client
from hcloud.actions import ActionFailedException, BoundAction
from hcloud.firewalls import FirewallResource, FirewallResourceLabelSelector, FirewallRule
from hcloud.images import Image
from hcloud.load_balancer_types import LoadBalancerType
from hcloud.load_balancers import LoadBalancerTarget, LoadBalancerTargetLabelSelector
from hcloud.locations import Location
from hcloud.networks import BoundNetwork, NetworkSubnet
from hcloud.placement_groups import PlacementGroup
from hcloud.primary_ips import PrimaryIP
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer, ServerCreatePublicNetwork

from tests.conftest import LocalCloud, SpecRecorder, make_client, start_localcloud


def _network(client: Client) -> BoundNetwork:
    return client.networks.create(name="net", ip_range="10.0.0.0/16", subnets=[
        NetworkSubnet(type="cloud", ip_range="10.0.1.0/24", network_zone="eu-central")])


def _wait(*actions: BoundAction) -> None:
    for action in actions:
        action.wait_until_finished()


def _server(client: Client, name: str, **kwargs: object) -> BoundServer:
    resp = client.servers.create(name=name, server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 location=Location(name="fsn1"), **kwargs)  # type: ignore[arg-type]
    _wait(resp.action, *resp.next_actions)
    return client.servers.get_by_id(resp.server.id)


@pytest.fixture
def faults(localcloud: LocalCloud) -> Iterator[LocalCloud]:
    yield localcloud
    localcloud.side("PUT", "faults", {})


# -- next actions follow their create -----------------------------------------------------------
def test_failed_server_create_fails_its_next_actions(client: Client, faults: LocalCloud) -> None:
    net = _network(client)
    volume = client.volumes.create(name="data", size=10, location=Location(name="fsn1"))
    _wait(volume.action)
    faults.side("PUT", "faults", {"actions": {"create_server": 1.0}})
    resp = client.servers.create(name="doomed", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 location=Location(name="fsn1"), networks=[net], volumes=[volume.volume])
    assert [a.command for a in resp.next_actions] == ["start_server", "attach_to_network", "attach_volume"]
    with pytest.raises(ActionFailedException):
        resp.action.wait_until_finished()
    for action in resp.next_actions:
        with pytest.raises(ActionFailedException) as exc:
            action.wait_until_finished()
        assert exc.value.action.error["code"] == "action_failed"
    server = client.servers.get_by_id(resp.server.id)
    assert server.status == "off"  # not started by a start_server that should never have run
    assert server.private_net == [] and server.volumes == []
    assert client.networks.get_by_id(net.id).servers == []
    assert client.volumes.get_by_id(volume.volume.id).server is None


def test_failed_volume_create_removes_the_volume_and_fails_its_attach(client: Client, faults: LocalCloud) -> None:
    server = _server(client, "host")
    faults.side("PUT", "faults", {"actions": {"create_volume": 1.0}})
    resp = client.volumes.create(name="data", size=10, server=server, automount=False)
    assert [a.command for a in resp.next_actions] == ["attach_volume"]
    with pytest.raises(ActionFailedException):
        resp.action.wait_until_finished()
    with pytest.raises(ActionFailedException):
        resp.next_actions[0].wait_until_finished()
    assert client.volumes.get_all() == []  # not left in status creating forever
    assert client.servers.get_by_id(server.id).volumes == []
    faults.side("PUT", "faults", {})
    retried = client.volumes.create(name="data", size=10, server=server)  # the name is free again
    _wait(retried.action, *retried.next_actions)
    assert [v.id for v in client.servers.get_by_id(server.id).volumes] == [retried.volume.id]


# -- locks span every resource of an action ------------------------------------------------------
def test_a_busy_server_locks_volume_and_primary_ip_actions_on_it(client: Client, localcloud: LocalCloud) -> None:
    resp = client.servers.create(name="busy", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 location=Location(name="fsn1"), start_after_create=False,
                                 public_net=ServerCreatePublicNetwork(enable_ipv4=False, enable_ipv6=True))
    v1 = client.volumes.create(name="v1", size=10, location=Location(name="fsn1"))
    v2 = client.volumes.create(name="v2", size=10, location=Location(name="fsn1"))
    ip = client.primary_ips.create(name="ip", type="ipv4", location=Location(name="fsn1")).primary_ip
    _wait(resp.action, v1.action, v2.action)
    server = client.servers.get_by_id(resp.server.id)
    localcloud.side("PUT", "config", {"time_scale": 10})  # actions take 0.5 s (reset restores it)
    first = client.volumes.attach(v1.volume, server)
    with pytest.raises(APIException) as exc:  # the server runs attach_volume
        client.volumes.attach(v2.volume, server)
    assert exc.value.code == "locked"
    with pytest.raises(APIException) as exc:
        client.primary_ips.assign(ip, assignee_id=server.id)
    assert exc.value.code == "locked"
    assert client.servers.get_by_id(server.id).id == server.id  # reads are never locked
    _wait(first)
    _wait(client.volumes.attach(v2.volume, server))
    _wait(client.primary_ips.assign(ip, assignee_id=server.id))
    with pytest.raises(APIException) as exc:  # detaching is an action on the server as well
        _wait(client.volumes.detach(v1.volume), client.volumes.detach(v2.volume))
    assert exc.value.code == "locked"
    server = client.servers.get_by_id(server.id)
    assert sorted(v.id for v in server.volumes) == [v2.volume.id]
    assert server.public_net.primary_ipv4 is not None and server.public_net.primary_ipv4.id == ip.id


# -- restart ------------------------------------------------------------------------------------
def test_server_create_and_its_next_actions_survive_a_restart(tmp_path: Path, recorder: SpecRecorder) -> None:
    state = tmp_path / "state"
    first = start_localcloud(state, "--time-scale", "20")  # create 2 s, then start and attach 2 s
    try:
        client = make_client(first, recorder)
        net = _network(client)
        resp = client.servers.create(name="s", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                     location=Location(name="fsn1"), networks=[net])
        ids = [resp.action.id] + [a.id for a in resp.next_actions]
    finally:
        first.stop()
    second = start_localcloud(state, "--time-scale", "20")
    try:
        client = make_client(second, recorder)
        assert client.servers.get_by_id(resp.server.id).status in ("initializing", "starting")
        with pytest.raises(APIException) as exc:
            client.servers.power_off(resp.server)
        assert exc.value.code == "locked"  # the restored running actions still hold it
        deadline = time.monotonic() + 20
        while any(client.actions.get_by_id(i).status == "running" for i in ids):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert [client.actions.get_by_id(i).status for i in ids] == ["success"] * 3
        server = client.servers.get_by_id(resp.server.id)
        assert server.status == "running" and [p.network.id for p in server.private_net] == [net.id]
    finally:
        second.stop()
    assert not recorder.problems, recorder.problems


# -- what a server delete leaves behind --------------------------------------------------------
def test_server_delete_leaves_every_other_resource_consistent(client: Client) -> None:
    net = _network(client)
    rule = FirewallRule(direction="in", protocol="tcp", port="22", source_ips=["0.0.0.0/0"])
    direct = client.firewalls.create(name="direct", rules=[rule]).firewall
    by_label = client.firewalls.create(name="by-label", rules=[rule], resources=[
        FirewallResource(type="label_selector", label_selector=FirewallResourceLabelSelector("role=web"))]).firewall
    group = client.placement_groups.create(name="spread", type="spread").placement_group
    volume = client.volumes.create(name="data", size=10, location=Location(name="fsn1"))
    kept_ip = client.primary_ips.create(name="kept", type="ipv4", location=Location(name="fsn1")).primary_ip
    _wait(volume.action)
    victim = _server(client, "victim", networks=[net], firewalls=[direct], volumes=[volume.volume],
                     labels={"role": "web"}, placement_group=PlacementGroup(id=group.id),
                     public_net=ServerCreatePublicNetwork(enable_ipv4=True, enable_ipv6=True,
                                                          ipv4=PrimaryIP(id=kept_ip.id)))
    other = _server(client, "other", networks=[net], labels={"role": "web"}, placement_group=group)
    lb_resp = client.load_balancers.create(name="lb", load_balancer_type=LoadBalancerType(name="lb11"),
                                           location=Location(name="fsn1"))
    _wait(lb_resp.action)
    lb = lb_resp.load_balancer
    _wait(client.load_balancers.attach_to_network(lb, net))
    _wait(client.load_balancers.add_target(lb, LoadBalancerTarget(type="server", server=victim,
                                                                  use_private_ip=True)))
    _wait(client.load_balancers.add_target(lb, LoadBalancerTarget(
        type="label_selector", label_selector=LoadBalancerTargetLabelSelector("role=web"), use_private_ip=True)))
    auto_ipv6 = victim.public_net.primary_ipv6
    assert auto_ipv6 is not None
    before = client.load_balancers.get_by_id(lb.id)
    assert [t.type for t in before.targets] == ["server", "label_selector"]
    assert sorted(t.server.id for t in before.targets[1].targets) == sorted([victim.id, other.id])

    _wait(client.servers.delete(victim))

    assert [s.id for s in client.servers.get_all()] == [other.id]
    fw = client.firewalls.get_by_id(direct.id)
    assert fw.applied_to == []
    selected = client.firewalls.get_by_id(by_label.id).applied_to[0].applied_to_resources
    assert [r.server.id for r in selected] == [other.id]
    lb_after = client.load_balancers.get_by_id(lb.id)
    assert [t.type for t in lb_after.targets] == ["label_selector"]
    assert [t.server.id for t in lb_after.targets[0].targets] == [other.id]
    assert client.volumes.get_by_id(volume.volume.id).server is None
    kept = client.primary_ips.get_by_id(kept_ip.id)  # auto_delete false: kept, unassigned
    assert kept.assignee_id is None
    with pytest.raises(APIException) as exc:
        client.primary_ips.get_by_id(auto_ipv6.id)  # auto_delete: gone with the server
    assert exc.value.code == "not_found"
    assert client.placement_groups.get_by_id(group.id).servers == [other.id]
    network = client.request("GET", f"/networks/{net.id}")["network"]
    assert (network["servers"], network["load_balancers"]) == ([other.id], [lb.id])
    # the freed private IP is handed out again, the others stay unique
    taken = {p.ip for p in client.servers.get_by_id(other.id).private_net} | {
        p.ip for p in client.load_balancers.get_by_id(lb.id).private_net}
    again = _server(client, "again", networks=[net])
    assert again.private_net[0].ip not in taken
    # the volume and the kept primary IP can be used again, and deleted
    _wait(client.volumes.attach(volume.volume, again))
    _wait(client.volumes.detach(volume.volume))
    client.volumes.delete(volume.volume)
    client.primary_ips.delete(kept)


def test_failed_power_actions_leave_the_status_they_found(client: Client, faults: LocalCloud) -> None:
    server = _server(client, "s")
    faults.side("PUT", "faults", {"actions": {"reboot_server": 1.0, "reset_server": 1.0, "shutdown_server": 1.0}})
    for act in (client.servers.reboot, client.servers.reset, client.servers.shutdown):
        with pytest.raises(ActionFailedException):
            act(server).wait_until_finished()
        assert client.servers.get_by_id(server.id).status == "running"  # not "off"
    faults.side("PUT", "faults", {})
    _wait(client.servers.power_off(server))
    faults.side("PUT", "faults", {"actions": {"stop_server": 1.0}})
    with pytest.raises(ActionFailedException):
        client.servers.power_off(server).wait_until_finished()
    assert client.servers.get_by_id(server.id).status == "off"  # a failed poweroff of an off server
