"""make_plan in process (tests/api/test_updates.py drives it through provision.py against localcloud):
an empty project is all creates in dependency order, each with the words the plan shows; what is no
longer in the environment file is deleted (protected ones say so); an SSH key already uploaded under
another name is used as it is; the counts, pending and destructive changes a confirmation reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from nornos_infra.cloud import desired
from nornos_infra.cloud.model import Desired, Observed, Op
from nornos_infra.cloud.plan import make_plan
from tests.unit.test_spec import KEY, load_shipped


@pytest.fixture
def dev(tmp_path: Path) -> list[Desired]:
    return desired.build(load_shipped("dev", tmp_path), tmp_path)


def test_an_empty_project_is_every_resource_created_in_dependency_order(dev: list[Desired]) -> None:
    plan = make_plan("dev", list(reversed(dev)), [])
    assert [(c.op, c.kind, c.name, c.reasons) for c in plan.changes] == [
        (Op.CREATE, "ssh_key", "nornos-dev-admin", ["new"]),
        (Op.CREATE, "network", "nornos-dev", ["10.0.0.0/16, subnet 10.0.1.0/24"]),
        (Op.CREATE, "firewall", "nornos-dev-k3s-agent",
         ["in: tcp/22 from admin CIDRs; applied to nornos.io/env=dev,nornos.io/role=k3s_agent"]),
        (Op.CREATE, "firewall", "nornos-dev-k3s-server",
         ["in: tcp/22, tcp/6443 from admin CIDRs; applied to nornos.io/env=dev,nornos.io/role=k3s_server"]),
        (Op.CREATE, "firewall", "nornos-dev-postgres",
         ["in: tcp/22 from admin CIDRs; applied to nornos.io/env=dev,nornos.io/role=postgres"]),
        (Op.CREATE, "firewall", "nornos-dev-redis",
         ["in: tcp/22 from admin CIDRs; applied to nornos.io/env=dev,nornos.io/role=redis"]),
        (Op.CREATE, "placement_group", "nornos-dev-agents-spread-1", ["new"]),
        (Op.CREATE, "placement_group", "nornos-dev-control-plane-spread-1", ["new"]),
        (Op.CREATE, "placement_group", "nornos-dev-postgres-spread-1", ["new"]),
        (Op.CREATE, "placement_group", "nornos-dev-redis-spread-1", ["new"]),
        (Op.CREATE, "placement_group", "nornos-dev-workers-spread-1", ["new"]),
        (Op.CREATE, "server", "nornos-dev-agents-1", ["cx43 in fsn1, debian-12, group nornos-dev-agents-spread-1"]),
        (Op.CREATE, "server", "nornos-dev-control-plane-1",
         ["cx23 in fsn1, debian-12, group nornos-dev-control-plane-spread-1"]),
        (Op.CREATE, "server", "nornos-dev-postgres-1",
         ["cx33 in fsn1, debian-12, group nornos-dev-postgres-spread-1"]),
        (Op.CREATE, "server", "nornos-dev-redis-1", ["cx23 in fsn1, debian-12, group nornos-dev-redis-spread-1"]),
        (Op.CREATE, "server", "nornos-dev-workers-1", ["cx33 in fsn1, debian-12, group nornos-dev-workers-spread-1"]),
        (Op.CREATE, "server", "nornos-dev-workers-2", ["cx33 in fsn1, debian-12, group nornos-dev-workers-spread-1"]),
        (Op.CREATE, "volume", "nornos-dev-postgres-data", ["50 GB attached to nornos-dev-postgres-1"]),
        (Op.CREATE, "load_balancer", "nornos-dev", ["lb11 in fsn1 on nornos-dev, tcp 80, 443 to the k3s nodes"]),
    ]
    assert all(c.desired is not None and c.desired.name == c.name and c.observed is None for c in plan.changes)
    assert plan.counts() == {"create": 19, "update": 0, "resize": 0, "replace": 0, "delete": 0, "no-op": 0}
    assert plan.pending == plan.changes and plan.destructive == []
    assert (plan.env, plan.problems, plan.notes) == ("dev", [], [])


def leftover(kind: str, name: str, ident: int, protected: bool = False) -> Observed:
    return Observed(kind, ident, name, {"nornos.io/env": "dev", "managed-by": "nornos-infra"}, {}, protected)


def test_what_the_file_no_longer_names_is_deleted_and_protection_is_said() -> None:
    observed = [leftover("server", "nornos-dev-old-2", 12, protected=True), leftover("server", "nornos-dev-old-1", 11),
                leftover("network", "nornos-dev-spare", 3)]
    plan = make_plan("dev", [], observed)
    assert [(c.op, c.kind, c.name, c.reasons) for c in plan.changes] == [
        (Op.DELETE, "network", "nornos-dev-spare", ["no longer in the environment file"]),
        (Op.DELETE, "server", "nornos-dev-old-1", ["no longer in the environment file"]),
        (Op.DELETE, "server", "nornos-dev-old-2", ["no longer in the environment file (protected: needs --force)"]),
    ]
    assert [c.observed.id for c in plan.changes if c.observed] == [3, 11, 12]
    assert plan.destructive == plan.changes and plan.pending == plan.changes
    assert plan.counts()["delete"] == 3


def test_a_key_uploaded_under_another_name_is_used_as_it_is(dev: list[Desired]) -> None:
    keys = [d for d in dev if d.kind == "ssh_key"]
    # the API shows a key as type and body (the comment dropped), and so do the desired settings
    assert keys[0].settings["public_key"] == " ".join(KEY.split()[:2])
    foreign = Observed("ssh_key", 77, "alice-laptop", {}, {"public_key": " ".join(KEY.split()[:2])}, False)
    other = Observed("ssh_key", 78, "bob", {}, {"public_key": "ssh-ed25519 AAAAother"}, False)
    plan = make_plan("dev", keys, [], foreign_keys=[other, foreign])
    change, = plan.changes
    assert (change.op, change.name, change.reasons) == (Op.NOOP, "nornos-dev-admin",
                                                        ["uses the existing key alice-laptop"])
    assert change.observed is foreign and change.desired is keys[0]
    assert plan.pending == [] and plan.counts()["no-op"] == 1
    # without it, the key is created
    assert [c.op for c in make_plan("dev", keys, [], foreign_keys=[other]).changes] == [Op.CREATE]
    assert [c.op for c in make_plan("dev", keys, []).changes] == [Op.CREATE]
