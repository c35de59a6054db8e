"""``invoke upgrade``: the rolling k3s upgrade against the fake Kubernetes API (nodes, pods,
evictions with PodDisruptionBudgets, a kubelet that reports its version). No k3s can run here, so
the binary swap on the host is replaced by a stand-in that does what the restarted kubelet does:
report the new version, Ready, with a fresh heartbeat. tests/e2e/test_upgrade_hosts.py swaps real
stand-in binaries on localcloud's machines."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nornos_infra import inventory
from nornos_infra.errors import UserError
from nornos_infra.host_command import Outcome
from nornos_infra.upgrade import __main__ as command
from nornos_infra.upgrade.drain import DrainTiming
from nornos_infra.upgrade.nodes import NodeApi
from nornos_infra.upgrade.rolling import Rolling, Stopped, Timing, check_versions, describe, plan
from tests.unit import fake_kube_nodes as objects
from tests.unit.fake_kube import FakeKube

OLD, NEW = "v1.35.0+k3s3", "v1.35.1+k3s1"
SHA = "ab" * 32
SERVERS = ["nornos-dev-control-plane-1", "nornos-dev-control-plane-2"]
AGENTS = ["nornos-dev-workers-2", "nornos-dev-workers-1"]  # out of order in the file: the run sorts them


def make_inventory(servers: list[str] = SERVERS, agents: list[str] = AGENTS, **shared: Any) -> inventory.Inventory:
    common = {"env": "dev", "k3s_version": NEW, "internet_access": True, **shared}
    return inventory.Inventory(shared=common, groups={  # the file's order is not the run's: servers reversed
        "k3s_servers": [(n, {"private_ip": f"10.0.1.{i}"}) for i, n in enumerate(reversed(servers), start=1)],
        "k3s_agents": [(n, {"private_ip": f"10.0.1.{i}"}) for i, n in enumerate(agents, start=11)]})


class Clock:
    """Time that passes only when the code under test sleeps; ``on_sleep`` runs at each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.on_sleep: list[Any] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for hook in self.on_sleep:
            hook()


class StandInSwap:
    """The host side: records each swap and, like the restarted kubelet, reports the new version."""

    def __init__(self, fake: FakeKube) -> None:
        self.fake = fake
        self.calls: list[tuple[str, str, str, Path | None]] = []
        self.fail_on: dict[str, Outcome] = {}
        self.never_ready: set[str] = set()
        self.beats = itertools.count(1)

    def __call__(self, host: inventory.Host, version: str, sha256: str, binary: Path | None) -> Outcome:
        self.calls.append((host.name, version, sha256, binary))
        if host.name in self.fail_on:
            return self.fail_on[host.name]
        if host.name not in self.never_ready:
            self.kubelet_reports(host.name, version)
        return Outcome(0, "")

    def kubelet_reports(self, name: str, version: str, ready: bool = True) -> None:
        status = {"status": {"nodeInfo": {"kubeletVersion": version}, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False",
             "lastHeartbeatTime": f"2026-12-01T01:00:{next(self.beats):02d}Z"}]}}
        with self.fake.state.lock:
            objects.patch_node(self.fake.state.objects, name, status, "status")


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as kube:
        for name in SERVERS:
            kube.seed(objects.node(name, OLD, server=True), "", "nodes")
        for name in AGENTS:
            kube.seed(objects.node(name, OLD), "", "nodes")
        yield kube


@pytest.fixture
def api(fake: FakeKube) -> NodeApi:
    return NodeApi(fake.api_client())


def rolling(api: NodeApi, swap: StandInSwap, clock: Clock, lines: list[str], **timing: float) -> Rolling:
    drain_timing = DrainTiming(timeout=timing.get("drain", 60.0), retry_every=5.0, poll_every=1.0)
    return Rolling(api, NEW, SHA, None, say=lines.append, swap=swap, clock=clock, sleep=clock.sleep,
                   timing=Timing(drain=drain_timing, ready_timeout=timing.get("ready", 30.0), ready_poll=2.0))


def node_writes(fake: FakeKube) -> list[tuple[str, str]]:
    """(node, what) for every cordon, uncordon and eviction, in order."""
    out = []
    for req in fake.state.requests:
        parts = req.path.strip("/").split("/")
        if req.method == "PATCH" and parts[2] == "nodes":
            out.append((parts[3], "cordon" if req.body["spec"]["unschedulable"] else "uncordon"))
        if req.method == "POST" and parts[-1] == "eviction":
            out.append((parts[-2], "evict"))
    return out


def test_servers_first_then_agents_one_node_at_a_time(fake: FakeKube, api: NodeApi) -> None:
    fake.seed(objects.pod("nornos", "patient-app-a", "nornos-dev-workers-1", {"app": "patient"}), "", "pods")
    swap, clock, lines = StandInSwap(fake), Clock(), []
    steps = plan(api, make_inventory(), NEW)
    assert [(s.host.name, s.role, s.action) for s in steps] == [
        ("nornos-dev-control-plane-1", "server", "upgrade"), ("nornos-dev-control-plane-2", "server", "upgrade"),
        ("nornos-dev-workers-1", "agent", "upgrade"), ("nornos-dev-workers-2", "agent", "upgrade")]
    done = rolling(api, swap, clock, lines).run(steps)
    assert done == [s.host.name for s in steps]
    assert [c[0] for c in swap.calls] == done and {c[1:] for c in swap.calls} == {(NEW, SHA, None)}
    # each node is cordoned, drained and uncordoned before the next one is touched
    expected = []
    for name in done:
        expected += [(name, "cordon")] + ([("patient-app-a", "evict")] if name == "nornos-dev-workers-1" else [])
        expected += [(name, "uncordon")]
    assert node_writes(fake) == expected
    # the strategic merge patches kubectl sends
    patches = [r for r in fake.state.requests if r.method == "PATCH"]
    assert {r.content_type for r in patches} == {"application/strategic-merge-patch+json"}
    assert patches[0].body == {"spec": {"unschedulable": True}} and patches[1].body == {"spec": {"unschedulable": None}}
    eviction = next(r for r in fake.state.requests if r.method == "POST")
    assert eviction.path == "/api/v1/namespaces/nornos/pods/patient-app-a/eviction"
    assert eviction.body["apiVersion"] == "policy/v1" and eviction.body["kind"] == "Eviction"
    assert eviction.body["metadata"] == {"name": "patient-app-a", "namespace": "nornos"}
    for name in done:
        node = fake.state.objects[("", "nodes", "", name)]
        assert node["status"]["nodeInfo"]["kubeletVersion"] == NEW and "unschedulable" not in node["spec"]
    # the evicted pod came back on another node (its ReplicaSet's work, in the fake)
    (replacement,) = [o for k, o in fake.state.objects.items() if k[1] == "pods"]
    assert replacement["metadata"]["name"].startswith("patient-app-r")
    assert replacement["spec"]["nodeName"] == "nornos-dev-control-plane-1", "the first schedulable node"
    assert "nornos-dev-workers-1: evicted nornos/patient-app-a" in "\n".join(lines).replace(":   ", ": ")


def test_a_second_run_changes_nothing(fake: FakeKube, api: NodeApi) -> None:
    swap, clock = StandInSwap(fake), Clock()
    rolling(api, swap, clock, []).run(plan(api, make_inventory(), NEW))
    before = len(fake.state.requests)
    steps = plan(api, make_inventory(), NEW)
    assert {s.action for s in steps} == {"skip"}
    lines: list[str] = []
    assert rolling(api, swap, clock, lines).run(steps) == []
    assert len(swap.calls) == 4 and not [r for r in fake.state.requests[before:] if r.method != "GET"]
    assert lines[0] == f"nornos-dev-control-plane-1: at {NEW} already, skipped"


def test_a_disruption_budget_holds_the_drain_until_it_allows_the_eviction(fake: FakeKube, api: NodeApi) -> None:
    # two replicas, one of them not Ready yet: evicting the Ready one would leave none available
    fake.seed(objects.pdb("nornos", "doctor-app", {"app": "doctor"}, min_available=1), "policy",
              "poddisruptionbudgets")
    fake.seed(objects.pod("nornos", "doctor-app-a", "nornos-dev-control-plane-1", {"app": "doctor"}), "", "pods")
    other = objects.pod("nornos", "doctor-app-b", "nornos-dev-workers-1", {"app": "doctor"})
    other["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    fake.seed(other, "", "pods")
    swap, clock, lines = StandInSwap(fake), Clock(), []

    def becomes_ready() -> None:
        if clock.now >= 15:  # three retries later the other replica is Ready
            fake.state.objects[("", "pods", "nornos", "doctor-app-b")]["status"]["conditions"][0]["status"] = "True"

    clock.on_sleep.append(becomes_ready)
    steps = plan(api, make_inventory(servers=SERVERS[:1], agents=[]), NEW)
    rolling(api, swap, clock, lines).run(steps)
    evictions = [r for r in fake.state.requests if r.method == "POST"]
    assert len(evictions) == 4, "refused at 0, 5 and 10 s, accepted at 15 s (kubectl retries every 5 s)"
    text = "\n".join(lines)
    assert ("waiting: nornos/doctor-app-a: Cannot evict pod as it would violate the pod's disruption budget. "
            "(The disruption budget doctor-app needs 1 healthy pods and has 1 currently) (retrying every 5 s)") in text
    assert text.count("waiting: nornos/doctor-app-a") == 1, "said once, not at every retry"
    assert swap.calls and clock.now >= 15


def test_a_budget_that_never_allows_stops_the_run_with_the_node_cordoned(fake: FakeKube, api: NodeApi) -> None:
    fake.seed(objects.pdb("nornos", "auth", {"app": "auth"}, max_unavailable=0), "policy", "poddisruptionbudgets")
    fake.seed(objects.pod("nornos", "auth-a", "nornos-dev-control-plane-2", {"app": "auth"}), "", "pods")
    swap, clock, lines = StandInSwap(fake), Clock(), []
    with pytest.raises(Stopped) as stopped:
        rolling(api, swap, clock, lines, drain=30.0).run(plan(api, make_inventory(), NEW))
    assert str(stopped.value) == (
        "upgrade stopped at nornos-dev-control-plane-2 (node 2 of 4, server), step drain: not evicted within 30 s: "
        "nornos/auth-a: Cannot evict pod as it would violate the pod's disruption budget. (The disruption budget "
        "auth needs 1 healthy pods and has 1 currently). The node is left cordoned. Done in this run: "
        "nornos-dev-control-plane-1. Fix the cause, then run the same command again: nodes at v1.35.1+k3s1 are "
        "skipped and this one is resumed")
    assert [c[0] for c in swap.calls] == ["nornos-dev-control-plane-1"]
    assert fake.state.objects[("", "nodes", "", "nornos-dev-control-plane-2")]["spec"] == {"unschedulable": True}
    assert ("", "pods", "nornos", "auth-a") in fake.state.objects
    assert not [w for w in node_writes(fake) if w[0].startswith("nornos-dev-workers")], "the agents are untouched"


def test_a_stopped_run_resumes_where_it_stopped(fake: FakeKube, api: NodeApi) -> None:
    swap, clock = StandInSwap(fake), Clock()
    swap.fail_on["nornos-dev-workers-1"] = Outcome(4, "k3s did not start with v1.35.1+k3s1 (the binary it "
                                                      "replaced is /usr/local/bin/k3s.previous):\nexec format error")
    with pytest.raises(Stopped) as stopped:
        rolling(api, swap, clock, []).run(plan(api, make_inventory(), NEW))
    assert str(stopped.value).startswith(
        "upgrade stopped at nornos-dev-workers-1 (node 3 of 4, agent), step binary: k3s did not start with "
        "v1.35.1+k3s1 (the binary it replaced is /usr/local/bin/k3s.previous): exec format error. The node is left "
        "cordoned. Done in this run: nornos-dev-control-plane-1, nornos-dev-control-plane-2.")
    assert "nornos-dev-workers-2" not in [c[0] for c in swap.calls]
    del swap.fail_on["nornos-dev-workers-1"]
    steps = plan(api, make_inventory(), NEW)
    assert [s.action for s in steps] == ["skip", "skip", "upgrade", "upgrade"]
    assert describe(steps, NEW)[2].split("->")[0].split()[-3:] == ["v1.35.0+k3s3", "Ready,", "cordoned"]
    before = len(swap.calls)
    assert rolling(api, swap, clock, []).run(steps) == ["nornos-dev-workers-1", "nornos-dev-workers-2"]
    assert [c[0] for c in swap.calls[before:]] == ["nornos-dev-workers-1", "nornos-dev-workers-2"]


def test_a_node_at_the_target_but_cordoned_is_only_uncordoned(fake: FakeKube, api: NodeApi) -> None:
    swap, clock = StandInSwap(fake), Clock()
    for name in SERVERS + AGENTS:
        swap.kubelet_reports(name, NEW)
    fake.state.objects[("", "nodes", "", "nornos-dev-workers-2")]["spec"] = {"unschedulable": True}
    steps = plan(api, make_inventory(), NEW)
    assert [s.action for s in steps] == ["skip", "skip", "skip", "uncordon"]
    assert "uncordon (at the target already: a stopped run's last step)" in describe(steps, NEW)[3]
    assert rolling(api, swap, clock, []).run(steps) == ["nornos-dev-workers-2"]
    assert swap.calls == [] and node_writes(fake) == [("nornos-dev-workers-2", "uncordon")]


def test_a_node_that_never_reports_ready_at_the_target_stops_the_run(fake: FakeKube, api: NodeApi) -> None:
    swap, clock = StandInSwap(fake), Clock()
    swap.never_ready.add("nornos-dev-control-plane-1")
    with pytest.raises(Stopped, match=r"at nornos-dev-control-plane-1 \(node 1 of 4, server\), step ready: not "
                       r"Ready at v1\.35\.1\+k3s1 within 30 s \(it reports v1\.35\.0\+k3s3, Ready\); see journalctl "
                       r"-u k3s on the host\. The node is left cordoned\. Fix the cause"):
        rolling(api, swap, clock, []).run(plan(api, make_inventory(), NEW))
    assert clock.now >= 30


def test_ready_needs_a_heartbeat_after_the_restart(fake: FakeKube, api: NodeApi) -> None:
    """Right after a restart the node can still show the old kubelet's Ready: only a new report counts."""
    swap, clock = StandInSwap(fake), Clock()
    name = "nornos-dev-control-plane-1"
    stale = fake.state.objects[("", "nodes", "", name)]["status"]["conditions"][0]["lastHeartbeatTime"]
    swap.never_ready.add(name)

    def version_without_a_new_heartbeat(host: inventory.Host, version: str, sha: str, binary: Path | None) -> Outcome:
        live = fake.state.objects[("", "nodes", "", name)]
        live["status"]["nodeInfo"]["kubeletVersion"] = version  # Ready True, heartbeat unchanged
        clock.on_sleep.append(lambda: clock.now >= 10 and swap.kubelet_reports(name, version))
        return Outcome(0, "")

    runner = rolling(api, swap, clock, [])
    runner.swap = version_without_a_new_heartbeat
    runner.run(plan(api, make_inventory(servers=[name], agents=[]), NEW))
    assert clock.now >= 10, "it waited for the kubelet's next report"
    assert fake.state.objects[("", "nodes", "", name)]["status"]["conditions"][0]["lastHeartbeatTime"] != stale


def test_drain_leaves_daemonset_and_static_pods_and_refuses_bare_ones(fake: FakeKube, api: NodeApi) -> None:
    where = "nornos-dev-control-plane-1"
    fake.seed(objects.pod("kube-system", "svclb-x", where, owner="DaemonSet"), "", "pods")
    fake.seed(objects.pod("kube-system", "static-etcd", where, owner=None,
                          annotations={"kubernetes.io/config.mirror": "abc"}), "", "pods")
    fake.seed(objects.pod("nornos", "cache-warm", where, empty_dir=True), "", "pods")
    fake.seed(objects.pod("nornos", "migrate-1", where, owner=None, phase="Succeeded"), "", "pods")
    swap, clock, lines = StandInSwap(fake), Clock(), []
    rolling(api, swap, clock, lines).run(plan(api, make_inventory(servers=[where], agents=[]), NEW))
    assert [w for w in node_writes(fake) if w[1] == "evict"] == [("cache-warm", "evict"), ("migrate-1", "evict")]
    text = "\n".join(lines)
    assert "left in place: kube-system/svclb-x (DaemonSet svclb)" in text
    assert "left in place: kube-system/static-etcd (a static pod: the kubelet owns it)" in text
    # a pod no controller owns would be lost: the drain refuses before evicting anything
    fake.seed(objects.pod("nornos", "debug-shell", "nornos-dev-workers-1", owner=None), "", "pods")
    fake.seed(objects.pod("nornos", "worker-q", "nornos-dev-workers-1"), "", "pods")
    with pytest.raises(Stopped, match=r"step drain: pods that no controller owns: nornos/debug-shell \(no controller:"
                       r" evicted, it would not come back\); move or delete them, then resume"):
        rolling(api, swap, clock, []).run(plan(api, make_inventory(servers=[where], agents=["nornos-dev-workers-1"]),
                                                NEW))
    assert ("", "pods", "nornos", "worker-q") in fake.state.objects


def test_two_budgets_on_one_pod_fail_the_drain_at_once(fake: FakeKube, api: NodeApi) -> None:
    for name in ("one", "two"):
        fake.seed(objects.pdb("nornos", name, {"app": "relay"}, min_available=0), "policy", "poddisruptionbudgets")
    fake.seed(objects.pod("nornos", "relay-a", "nornos-dev-control-plane-1", {"app": "relay"}), "", "pods")
    clock = Clock()
    with pytest.raises(Stopped, match=r"step drain: eviction of nornos/relay-a refused \(500\): This pod has more "
                       r"than one PodDisruptionBudget"):
        rolling(api, StandInSwap(fake), clock, []).run(plan(api, make_inventory(), NEW))
    assert clock.now == 0, "no retry: waiting does not fix it"


def test_an_eviction_the_api_forbids_fails_the_drain_at_once(fake: FakeKube, api: NodeApi) -> None:
    fake.state.forbid_delete.add("relay-a")  # RBAC or an admission webhook: 403, which no retry fixes
    fake.seed(objects.pod("nornos", "relay-a", "nornos-dev-control-plane-1", {"app": "relay"}), "", "pods")
    clock = Clock()
    with pytest.raises(Stopped, match=r"step drain: eviction of nornos/relay-a refused \(403\): pods \"relay-a\" is "
                       r"forbidden: User cannot create resource \"pods/eviction\""):
        rolling(api, StandInSwap(fake), clock, []).run(plan(api, make_inventory(), NEW))
    assert clock.now == 0


def test_drain_waits_for_evicted_pods_to_terminate(fake: FakeKube, api: NodeApi) -> None:
    fake.state.terminating_gets = 3
    fake.seed(objects.pod("nornos", "agent-svc-a", "nornos-dev-control-plane-1"), "", "pods")
    swap, clock = StandInSwap(fake), Clock()
    rolling(api, swap, clock, []).run(plan(api, make_inventory(servers=SERVERS[:1], agents=[]), NEW))
    gets = [r for r in fake.state.requests if r.method == "GET" and r.path.endswith("/pods/agent-svc-a")]
    assert len(gets) == 3 and clock.now >= 2, "polled every second until it was gone"
    assert ("", "pods", "nornos", "agent-svc-a") not in fake.state.objects


def test_agents_never_run_ahead_of_the_servers(fake: FakeKube, api: NodeApi) -> None:
    swap, clock = StandInSwap(fake), Clock()
    steps = plan(api, make_inventory(), NEW)
    # a server was skipped (someone marked it done) although it still runs the old version
    steps[1] = type(steps[1])(steps[1].host, "server", steps[1].state, "skip")
    with pytest.raises(Stopped, match="upgrade stopped before the agents: nornos-dev-control-plane-2 not at "
                       r"v1\.35\.1\+k3s1 yet \(agents never run ahead of the servers\)"):
        rolling(api, swap, clock, []).run(steps)
    assert [c[0] for c in swap.calls] == ["nornos-dev-control-plane-1"]


def test_version_rules() -> None:
    from nornos_infra.upgrade.nodes import NodeState

    def states(*versions: str) -> dict[str, NodeState]:
        return {f"n{i}": NodeState(f"n{i}", v, True, "", False) for i, v in enumerate(versions)}

    check_versions(NEW, states(OLD, NEW))  # a stopped run: mixed versions are fine
    check_versions("v1.35.0+k3s3", states("v1.34.3+k3s1"))  # one minor up
    with pytest.raises(UserError, match=r"n1 already runs a newer k3s than v1\.35\.0\+k3s3 \(v1\.35\.0\+k3s4\): k3s "
                       "cannot be downgraded"):
        check_versions("v1.35.0+k3s3", states(OLD, "v1.35.0+k3s4"))
    with pytest.raises(UserError, match=r"n0 runs v1\.33\.7\+k3s1: v1\.35\.0\+k3s3 would skip a minor version, "
                       r"which Kubernetes does not support; upgrade to a v1\.34 release first"):
        check_versions("v1.35.0+k3s3", states("v1.33.7+k3s1", "v1.34.3+k3s1"))


def test_a_node_the_cluster_does_not_know_is_refused(fake: FakeKube, api: NodeApi) -> None:
    with pytest.raises(UserError, match=r"not in the cluster: nornos-dev-workers-3 \(the API server has no such "
                       r"node\); deploy k3s there first"):
        plan(api, make_inventory(agents=[*AGENTS, "nornos-dev-workers-3"]), NEW)


def test_the_dry_run_shows_the_order_and_changes_nothing(fake: FakeKube, api: NodeApi) -> None:
    fake.seed(objects.pod("nornos", "relay-a", "nornos-dev-workers-1"), "", "pods")
    fake.seed(objects.pod("kube-system", "svclb-a", "nornos-dev-workers-1", owner="DaemonSet"), "", "pods")
    fake.seed(objects.pod("nornos", "bare", "nornos-dev-workers-2", owner=None), "", "pods")
    lines: list[str] = []
    status = command.upgrade(api, make_inventory(), NEW, SHA, None, dry_run=True, say=lines.append)
    assert status == 2
    assert lines[0] == f"k3s {NEW} (sha256 {SHA[:12]}...), one node at a time, servers first:"
    assert [line.split()[1] for line in lines[1:5]] == [*SERVERS, "nornos-dev-workers-1", "nornos-dev-workers-2"]
    assert lines[1].endswith("-> cordon, drain, swap the binary, restart, wait for Ready, uncordon "
                             "(0 pod(s) to evict, 0 left in place)")
    assert lines[3].endswith("(1 pod(s) to evict, 1 left in place)")
    assert "BLOCKED by nornos/bare (no controller" in lines[4]
    assert lines[-1] == "dry run: nothing was changed; 4 node(s) to upgrade"
    assert [r for r in fake.state.requests if r.method != "GET"] == []


def test_nothing_to_do_exits_0(fake: FakeKube, api: NodeApi) -> None:
    swap = StandInSwap(fake)
    for name in SERVERS + AGENTS:
        swap.kubelet_reports(name, NEW)
    lines: list[str] = []
    assert command.upgrade(api, make_inventory(), NEW, SHA, None, dry_run=True, say=lines.append) == 0
    assert lines[-1] == "dry run: nothing to do"
    assert command.upgrade(api, make_inventory(), NEW, SHA, None, dry_run=False, say=lines.append, swap=swap) == 0
    assert lines[-1] == f"nothing to do: every node runs {NEW}" and swap.calls == []


# --- the command line: what is refused before anything runs -------------------------------------------------

ENV = """\
name: dev
location: fsn1
admin_cidrs: [203.0.113.0/24]
ssh_keys:
  - name: ops
    public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHZ0ZXN0a2V5Zm9ydGVzdHNvbmx5bm90cmVhbGtleTE= ops"
pools:
  control-plane: {role: k3s_server, server_type: cx23, count: 1}
  postgres: {role: postgres, server_type: cx23, count: 1, volume_gb: 10}
  redis: {role: redis, server_type: cx23, count: 1}
k3s: {version: VERSION}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "environments").mkdir()
    (tmp_path / "inventories").mkdir()
    monkeypatch.setenv("NORNOS_PROJECT_DIR", str(tmp_path))
    return tmp_path


def write_project(project: Path, env_version: str, inventory_version: str, **shared: Any) -> None:
    (project / "environments" / "dev.yaml").write_text(ENV.replace("VERSION", env_version))
    common = {"env": "dev", "k3s_version": inventory_version, "internet_access": True, **shared}
    (project / "inventories" / "dev.py").write_text(
        f"_common = {json.dumps(common)}\n".replace("true", "True").replace("false", "False")
        + "k3s_servers = ([('nornos-dev-control-plane-1', {'private_ip': '10.0.1.1'})], dict(_common))\n")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = command.main(["dev", *args])
    captured = capsys.readouterr()
    return status, (captured.out + captured.err).strip()


def test_the_target_is_the_env_files_version(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(project, "v1.35.0+k3s3", "v1.35.0+k3s3")
    status, out = cli(capsys, "--k3s", "v1.34.3+k3s1", "--kubeconfig", str(project / "none"))
    assert status == 1
    assert out == (f"upgrade: --k3s v1.34.3+k3s1, but {project}/environments/dev.yaml has k3s.version v1.35.0+k3s3: "
                   "set k3s.version: v1.34.3+k3s1 there and run `python provision.py dev` first, so that later "
                   "deploys keep v1.34.3+k3s1")
    write_project(project, "v1.35.0+k3s3", "v1.34.3+k3s1")
    status, out = cli(capsys, "--kubeconfig", str(project / "none"))
    assert (status, out) == (1, f"upgrade: {project}/inventories/dev.py has k3s_version v1.34.3+k3s1, the env file "
                                "v1.35.0+k3s3: run `python provision.py dev` first")


def test_an_unpinned_version_in_the_env_file_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(project, "v1.36.0+k3s1", "v1.36.0+k3s1")
    status, out = cli(capsys)
    assert (status, out) == (1, f"upgrade: {project}/environments/dev.yaml: k3s.version: k3s v1.36.0+k3s1 has no "
                                "pinned checksum in nornos_infra/k3s_releases.py (pinned: v1.34.3+k3s1, v1.35.0+k3s3); "
                                "add the release's sha256 there first (docs/RUNBOOK.md, 'Upgrading k3s')")


def test_hosts_without_internet_need_a_binary(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(project, "v1.35.0+k3s3", "v1.35.0+k3s3", internet_access=False)
    status, out = cli(capsys)
    assert (status, out) == (1, "upgrade: the hosts have no internet access: pass --binary FILE, the k3s binary of "
                                "the target release (its pinned checksum is checked)")
    status, out = cli(capsys, "--binary", str(project / "k3s"))
    assert (status, out) == (1, f"upgrade: {project}/k3s is not a file (the k3s binary to install)")


def test_no_kubeconfig_is_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(project, "v1.35.0+k3s3", "v1.35.0+k3s3")
    status, out = cli(capsys)
    assert (status, out) == (1, f"upgrade: {project}/.kube/nornos-dev.yaml does not exist; fetch it with `invoke "
                                "kubeconfig --env ENV` or pass --kubeconfig")


def test_the_command_line_dry_run_against_a_cluster(project: Path, fake: FakeKube,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    write_project(project, "v1.35.0+k3s3", "v1.35.0+k3s3")
    fake.state.objects[("", "nodes", "", "nornos-dev-control-plane-1")]["status"]["nodeInfo"]["kubeletVersion"] = \
        "v1.34.3+k3s1"
    config = project / "kubeconfig"
    config.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                                  "clusters": [{"name": "fake", "cluster": {"server": fake.url}}],
                                  "users": [{"name": "fake", "user": {}}],
                                  "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}))
    status, out = cli(capsys, "--dry-run", "--kubeconfig", str(config))
    assert status == 2
    assert out.splitlines()[1].split() == ["1.", "nornos-dev-control-plane-1", "server", "v1.34.3+k3s1", "Ready",
                                           "->", "cordon,", "drain,", "swap", "the", "binary,", "restart,", "wait",
                                           "for", "Ready,", "uncordon", "(0", "pod(s)", "to", "evict,", "0", "left",
                                           "in", "place)"]
    assert out.splitlines()[-1] == "dry run: nothing was changed; 1 node(s) to upgrade"
