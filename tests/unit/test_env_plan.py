"""``invoke plan`` (nornos_infra/env_plan.py): the hosts layer through the real pyinfra (a dry
run against this machine's @local connector, on files in a temporary directory), the manifests
layer against the fake Kubernetes API through a real kubeconfig, and how the three layers add up
to one exit status. The cloud layer against localcloud: tests/api/test_invoke_plan.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nornos_infra import env_plan
from nornos_infra.env_plan import CLEAN, FAILED, MASK, NOT_RUN, PENDING, EnvPlan, Layer
from nornos_infra.kube import from_inventory
from tests.unit.fake_kube import FakeKube
from tests.unit.test_kube_cli import VALUES, checkout, kube  # noqa: F401  (fixtures)

SECRET = "s3cr3t-value-of-the-env"
DEPLOY = """
from io import StringIO
from pyinfra.operations import files, server

config = files.put(name="Service config", src=StringIO("port 6379\\nrequirepass {secret}\\n"),
                   dest="{dir}/service.conf")
files.put(name="Unchanged file", src=StringIO("same\\n"), dest="{dir}/same.txt")
server.shell(name="Service: restart on change", commands=["true"], _if=config.did_change)
"""


def local_deploy(tmp_path: Path, current: str) -> tuple[Path, Path]:
    """An inventory of this machine (@local) and a deploy over files in ``tmp_path``; dry runs only."""
    (tmp_path / "service.conf").write_text(current)
    (tmp_path / "same.txt").write_text("same\n")
    inventory = tmp_path / "dev.py"
    inventory.write_text('redis = ([("@local", {})], {})\n')  # the inventory's layout: groups of (name, data)
    deploy = tmp_path / "deploy.py"
    deploy.write_text(DEPLOY.format(secret=SECRET, dir=tmp_path))
    return inventory, deploy


def test_hosts_layer_lists_what_would_change_with_the_diff_and_masks_secrets(tmp_path: Path) -> None:
    inventory, deploy = local_deploy(tmp_path, f"port 6380\nrequirepass {SECRET}\n")
    layer = env_plan.hosts("dev", lambda env: {"redis_password": SECRET, "short": "abc"},
                           inventory_file=inventory, deploy=deploy)
    assert layer.state == PENDING
    assert layer.summary == "1 operation(s) would change on 1 host(s): @local"
    lines = layer.body.splitlines()
    assert lines[0] == "  ~ Service config: @local"
    assert lines[1] == "  ? Service: restart on change: @local (only if the changes above call for it)"
    assert any(line.strip() == "- port 6380" for line in lines) and any(line.strip() == "+ port 6379" for line in lines)
    assert f"requirepass {MASK}" in layer.body and SECRET not in json.dumps(layer.data) + layer.body
    assert "Unchanged file" not in layer.body and "Loading:" not in layer.body
    assert (tmp_path / "service.conf").read_text() == f"port 6380\nrequirepass {SECRET}\n", "a dry run changes nothing"
    assert layer.data["operations"] == [{"name": "Service config", "hosts": ["@local"]}]


def test_hosts_layer_with_nothing_to_do_is_clean(tmp_path: Path) -> None:
    inventory, deploy = local_deploy(tmp_path, f"port 6379\nrequirepass {SECRET}\n")
    layer = env_plan.hosts("dev", lambda env: {}, inventory_file=inventory, deploy=deploy)
    assert (layer.state, layer.summary, layer.data["operations"]) == (CLEAN, "no changes", [])


def test_hosts_layer_says_why_it_did_not_run(tmp_path: Path) -> None:
    layer = env_plan.hosts("dev", lambda env: {}, inventory_file=tmp_path / "dev.py")
    assert (layer.state, layer.summary) == (
        NOT_RUN, "not run: no inventory yet (inventories/dev.py is written by provision.py)")
    _, deploy = local_deploy(tmp_path, "")
    unreachable = tmp_path / "gone.py"
    unreachable.write_text('redis = ([("gone-1", {"ssh_hostname": "127.0.0.1", "ssh_port": 1, '
                           '"ssh_connect_retries": 0})], {})\n')
    layer = env_plan.hosts("dev", lambda env: {}, inventory_file=unreachable, deploy=deploy)
    assert layer.state == FAILED and layer.summary.startswith("failed: 1 host(s) could not be planned (gone-1): ")
    assert layer.summary.endswith("are the servers running and reachable over SSH?") and "Traceback" not in layer.body
    empty = tmp_path / "empty.py"
    empty.write_text("_common = {'env': 'dev'}\nredis = ([], dict(_common))\n")
    layer = env_plan.hosts("dev", lambda env: {}, inventory_file=empty, deploy=deploy)
    assert (layer.state, layer.summary) == (NOT_RUN, "not run: no servers yet (the cloud plan creates them)")


def test_the_env_files_secrets_are_masked_longest_first() -> None:
    values = {"a": "password-1234", "b": "password-1234-and-more", "short": "1234"}
    assert env_plan.mask("x password-1234-and-more y password-1234 1234", values) == f"x {MASK} y {MASK} 1234"


def test_manifests_layer_is_a_server_side_dry_run(kube: FakeKube, checkout: Path) -> None:  # noqa: F811
    layer = env_plan.manifests("dev")
    assert layer.state == PENDING, layer.summary
    assert re.fullmatch(r"\d+ would be created, 0 would be configured, 0 unchanged, 0 would be pruned", layer.summary)
    assert "\n+++ merged/core.Namespace._.nornos\n" in layer.body, "the diff"
    assert re.search(r"^Namespace nornos: would be created$", layer.body, re.M), "the report's lines"
    assert not [k for k, v in VALUES.items() if len(v) >= 8 and v in layer.body + json.dumps(layer.data)]
    assert not kube.state.objects.get(("", "namespaces", "", "nornos")), "a dry run creates nothing"
    assert from_inventory.apply_from_inventory("dev", dry_run=False).ok
    again = env_plan.manifests("dev")
    assert (again.state, again.summary) == (CLEAN, "no changes")


def test_manifests_layer_says_why_it_cannot_run(kube: FakeKube, checkout: Path) -> None:  # noqa: F811
    inventory = checkout / "inventories" / "dev.py"
    inventory.write_text(inventory.read_text().replace("_common = {'env': 'dev'}",
                                                       "_common = {'env': 'dev', 'internet_access': False}"))
    layer = env_plan.manifests("dev")
    assert (layer.state, layer.summary) == (NOT_RUN, "not run: no cluster: k3s is not installed on these hosts (no "
                                            "internet access and no k3s_binary_path), so there is nothing to "
                                            "compare the manifests with")
    inventory.write_text(inventory.read_text().replace("'internet_access': False", "'internet_access': True"))
    (checkout / ".kube" / "nornos-dev.yaml").unlink()
    layer = env_plan.manifests("dev")
    assert (layer.state, layer.summary) == (NOT_RUN, f"not run: no kubeconfig ({checkout / '.kube' / 'nornos-dev.yaml'}"
                                                     " does not exist; fetch it with `invoke kubeconfig --env dev`)")
    assert env_plan.manifests("staging").summary == "not run: no inventory yet, so no cluster"
    assert not kube.state.requests


@pytest.mark.parametrize(("states", "status"), [
    ((CLEAN, CLEAN, NOT_RUN), 0), ((CLEAN, PENDING, NOT_RUN), 2), ((PENDING, CLEAN, CLEAN), 2),
    ((PENDING, FAILED, NOT_RUN), 1), ((CLEAN, CLEAN, FAILED), 1)])
def test_the_exit_status_adds_up_the_layers(states: tuple[str, str, str], status: int) -> None:
    plan = EnvPlan("dev", [Layer(name, state, f"{name} is {state}", f"cmd {name}")
                           for name, state in zip(("cloud", "hosts", "manifests"), states, strict=True)])
    assert plan.exit_status == status
    assert plan.as_dict()["exit_status"] == status
    assert plan.as_dict()["pending"] == [n for n, s in zip(("cloud", "hosts", "manifests"), states, strict=True)
                                         if s == PENDING]


def test_the_text_has_a_section_per_layer_and_ends_with_the_summary() -> None:
    plan = EnvPlan("dev", [Layer("cloud", PENDING, "1 to create", "provision.py dev --dry-run", "Plan for dev\n"),
                           Layer("hosts", NOT_RUN, "not run: no inventory yet", "pyinfra --dry --diff"),
                           Layer("manifests", CLEAN, "no changes", "invoke manifests --dry-run", "dev: 0 created\n")])
    assert plan.text() == ("== cloud: provision.py dev --dry-run\nPlan for dev\n\n"
                           "== hosts: pyinfra --dry --diff\nnot run: no inventory yet\n\n"
                           "== manifests: invoke manifests --dry-run\ndev: 0 created\n\n"
                           "plan dev: cloud 1 to create; hosts not run: no inventory yet; manifests no changes\n")
