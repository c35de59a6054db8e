#!/usr/bin/env python3
"""Apply known mutations one by one to a copy of the tree and report whether the tests kill them.

The first nine are the hand mutations of issue 16 (each broke documented behaviour while the
suite stayed green); the others break the update paths that no test ran before. Each mutation
is applied to a temporary copy of the repository (never to the working tree), the tests that
cover the behaviour run there, and a mutation is "killed" when they fail.

    .venv/bin/python scripts/mutations.py              # all of them, from the committed tree (HEAD)
    .venv/bin/python scripts/mutations.py --worktree   # from the working tree (uncommitted changes too)
    .venv/bin/python scripts/mutations.py -k volume    # only those whose name contains "volume"
    .venv/bin/python scripts/mutations.py --list

Exit status 0 when every mutation was killed, 1 when one survived or the unmutated tests fail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPDATES = "tests/api/test_updates.py"
WAITER = "tests/api/test_waiter.py"
K3S = "tests/unit/test_k3s_role.py"
ROLLOUT = "tests/unit/test_kube_strict.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    what: str


MUTATIONS: tuple[Mutation, ...] = (
    # -- the nine of issue 16 --------------------------------------------------------------------------
    Mutation("firewall-never-reapplied", "nornos_infra/cloud/resources/firewalls.py",
             "        if missing:\n", "        if False:\n",
             (f"{UPDATES}::test_firewall_detached_from_its_servers_is_applied_again",),
             "never plan apply_selectors: a firewall detached from its servers stays detached"),
    Mutation("volume-never-grows", "nornos_infra/cloud/resources/volumes.py",
             '        if w["size"] > h["size"]:\n', "        if False:\n",
             (f"{UPDATES}::test_volume_grows_in_place",), "never plan a volume grow"),
    Mutation("failed-dependents-not-skipped", "nornos_infra/cloud/apply.py",
             "            outcome.skipped.append(change)\n", "            pass\n",
             (f"{UPDATES}::test_what_depends_on_a_failed_change_is_reported_as_not_started",),
             "what depends on a failed change is not reported as skipped"),
    Mutation("rollout-ignores-observed-generation", "nornos_infra/kube/rollout.py",
             '    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):\n',
             "    if False:\n", (ROLLOUT,), "the rollout wait ignores observedGeneration"),
    Mutation("rollout-ignores-updated-replicas", "nornos_infra/kube/rollout.py",
             "    if wanted is not None and updated < int(wanted):\n", "    if False:\n", (ROLLOUT,),
             "the rollout wait ignores updatedReplicas < spec.replicas"),
    Mutation("k3s-without-pod-security-config", "nornos_infra/roles/k3s.py",
             '            "kube-apiserver-arg": ["admission-control-config-file=/etc/rancher/k3s/psa.yaml"],\n', "",
             (K3S,), "the API server is not given the PodSecurity admission config"),
    Mutation("k3s-kubeconfig-world-readable", "nornos_infra/roles/k3s.py",
             '"write-kubeconfig-mode": "0600"', '"write-kubeconfig-mode": "0644"', (K3S,),
             "write-kubeconfig-mode 0644: the admin kubeconfig readable by every user"),
    Mutation("waiter-failed-action-succeeds", "nornos_infra/cloud/waiter.py",
             '        if action["status"] == "success":\n            future.set_result(action)\n',
             "        if True:\n            future.set_result(action)\n", (WAITER,),
             "the action poller takes a failed action for a finished one"),
    Mutation("waiter-timeout-passes", "nornos_infra/cloud/waiter.py",
             "            except TimeoutError:\n", "            except TimeoutError:\n                return results\n",
             (WAITER,), "the action poller returns quietly when actions run past its timeout"),
    # -- update paths no test ran before ----------------------------------------------------------------
    Mutation("network-subnet-never-added", "nornos_infra/cloud/resources/networks.py",
             "sorted(want_subnets - have_subnets)", "sorted(want_subnets - have_subnets - want_subnets)",
             (f"{UPDATES}::test_network_without_its_subnet_gets_it_before_servers_join",), "never add a subnet"),
    Mutation("network-subnet-never-removed", "nornos_infra/cloud/resources/networks.py",
             "sorted(have_subnets - want_subnets)", "sorted(have_subnets - want_subnets - have_subnets)",
             (f"{UPDATES}::test_network_subnet_added_by_hand_is_removed",), "never remove a foreign subnet"),
    Mutation("network-range-never-grows", "nornos_infra/cloud/resources/networks.py",
             "            if h.subnet_of(w) and w.network_address == h.network_address:",
             "            if False:", (f"{UPDATES}::test_network_range_grows_in_place",),
             "a grown network range is planned as a replacement"),
    Mutation("volume-never-detached", "nornos_infra/cloud/resources/volumes.py",
             '            if h["server_id"] is not None:\n', "            if False:\n",
             (f"{UPDATES}::test_volume_on_another_server_moves_back",),
             "a volume on another server is attached without a detach"),
    Mutation("volume-attach-to-wrong-server", "nornos_infra/cloud/resources/volumes.py",
             'json={"server": ctx.index.id("server", step.detail["server"]),',
             'json={"server": change.observed.settings["server_id"] or ctx.index.id("server", step.detail["server"]),',
             (f"{UPDATES}::test_volume_on_another_server_moves_back",), "the volume goes back where it was"),
    Mutation("lb-type-never-changed", "nornos_infra/cloud/resources/load_balancers.py",
             '        if w["type"] != h["type"]:\n', "        if False:\n",
             (f"{UPDATES}::test_load_balancer_type_and_algorithm",), "never change the LB type"),
    Mutation("lb-algorithm-wrong", "nornos_infra/cloud/resources/load_balancers.py",
             '("change_algorithm", {"type": d.get("algorithm")})', '("change_algorithm", {"type": "round_robin"})',
             (f"{UPDATES}::test_load_balancer_type_and_algorithm",), "change_algorithm sends the wrong algorithm"),
    Mutation("lb-service-never-updated", "nornos_infra/cloud/resources/load_balancers.py",
             "            elif have_services[port] != service:\n", "            elif False:\n",
             (f"{UPDATES}::test_load_balancer_services_added_updated_and_deleted",),
             "a service changed by hand is never updated"),
    Mutation("lb-target-never-removed", "nornos_infra/cloud/resources/load_balancers.py",
             "            if target not in want_targets:\n", "            if False:\n",
             (f"{UPDATES}::test_load_balancer_targets_repaired",), "a foreign target stays"),
    Mutation("server-never-replaced", "nornos_infra/cloud/resources/servers.py",
             '        if h["location"] not in allowed:\n', "        if False:\n",
             (f"{UPDATES}::test_server_in_a_location_no_longer_allowed_is_replaced",),
             "a server in a location no longer allowed stays"),
    Mutation("server-network-never-attached", "nornos_infra/cloud/resources/servers.py",
             '            if network not in h["networks"]:\n                verdict.step("attach_network"',
             '            if False:\n                verdict.step("attach_network"',
             (f"{UPDATES}::test_server_detached_from_the_network_is_attached_again",),
             "a server off the network is never attached again"),
    Mutation("labels-never-repaired", "nornos_infra/cloud/resources/base.py",
             "            if any(have.labels.get(k) != v for k, v in want.labels.items()):\n",
             "            if False:\n",
             (f"{UPDATES}::test_labels_changed_by_hand_are_set_back_and_foreign_labels_kept",),
             "labels changed by hand are never set back"),
    Mutation("labels-drop-foreign", "nornos_infra/cloud/resources/base.py",
             'labels={**have.labels, **want.labels})', "labels=dict(want.labels))",
             (f"{UPDATES}::test_labels_changed_by_hand_are_set_back_and_foreign_labels_kept",),
             "repairing labels removes everyone else's"),
    Mutation("protection-never-changed", "nornos_infra/cloud/resources/base.py",
             "            if self.protection_keys and want.protect != have.protected:\n", "            if False:\n",
             (f"{UPDATES}::test_protection_on_then_off",), "protection is never switched"),
    Mutation("ssh-key-never-reused", "nornos_infra/cloud/plan.py",
             '        if o is None and d.kind == "ssh_key" and d.settings["public_key"] in by_key:\n',
             "        if False:\n", (f"{UPDATES}::test_key_uploaded_under_another_name_is_used_as_it_is",),
             "a key uploaded under another name is uploaded again"),
)


def copy_tree(dest: Path, worktree: bool) -> None:
    if worktree:
        listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                                capture_output=True).stdout.decode().split("\0")
        for rel in filter(None, listed):
            src = ROOT / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
    else:
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def run_tests(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[bool, str]:
    """True when the tests pass. A run that hangs past ``timeout`` counts as failing."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    spec = ROOT.parent / "shared" / "reference" / "hcloud-openapi.json"
    if "HCLOUD_OPENAPI" not in env and spec.exists():
        env["HCLOUD_OPENAPI"] = str(spec)  # the copy is not beside ../shared: keep the conformance checks
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x", "-n", "2", *tests]
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode == 0, (lines[-1] if lines else proc.stderr[-300:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worktree", action="store_true", help="copy the working tree instead of HEAD")
    parser.add_argument("-k", dest="only", default="", help="only mutations whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per test run")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.only in m.name]
    if args.list:
        for m in chosen:
            print(f"{m.name:40} {m.path}: {m.what}")
        return 0
    if not chosen:
        print(f"no mutation matches {args.only!r}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="nornos-mutations-") as tmp:
        tree = Path(tmp)
        copy_tree(tree, args.worktree)
        every = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        passed, summary = run_tests(tree, every, args.timeout)
        print(f"unmutated: {'pass' if passed else 'FAIL'} ({summary})", flush=True)
        if not passed:
            print("the tests fail without any mutation: fix that first", file=sys.stderr)
            return 1
        survived = []
        for m in chosen:
            target = tree / m.path
            original = target.read_text()
            count = original.count(m.old)
            if count != 1:
                print(f"{m.name:40} NOT APPLIED: the text to change occurs {count} times in {m.path}", flush=True)
                survived.append(m.name)
                continue
            target.write_text(original.replace(m.old, m.new))
            start = time.monotonic()
            try:
                passed, summary = run_tests(tree, m.tests, args.timeout)
            finally:
                target.write_text(original)
            verdict = "survived" if passed else "killed"
            print(f"{m.name:40} {verdict:8} {time.monotonic() - start:5.1f} s  {m.what}  [{summary}]", flush=True)
            if passed:
                survived.append(m.name)
    killed = len(chosen) - len(survived)
    print(f"\n{killed} of {len(chosen)} mutations killed" + (f"; survived: {', '.join(survived)}" if survived else ""))
    return 0 if not survived else 1


if __name__ == "__main__":
    sys.exit(main())
