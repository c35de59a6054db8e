"""The deploy context the roles share (nornos_infra/roles/context.py): built once per deploy,
the env's secrets decrypted once (real sops and age), a missing env named in one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.exceptions import OperationError
from pyinfra.context import ctx_host, ctx_state

from nornos_infra import secrets
from nornos_infra.inventory import HOST_DATA, ROLE_DEFAULTS
from nornos_infra.roles import context

HOSTS = {"postgres": [("pg-1", "10.0.1.4")], "redis": [("redis-1", "10.0.1.5")],
         "k3s_servers": [("cp-1", "10.0.1.2"), ("cp-2", "10.0.1.3")]}


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[State, dict[str, Any]]]:
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(tmp_path / "age.txt"))
    monkeypatch.setenv("NORNOS_SECRETS_DIR", str(tmp_path / "secrets"))
    secrets.init("dev")
    common = {"env": "dev", "sops_dir": str(tmp_path / "secrets"), "sops_age_key_file": str(tmp_path / "age.txt")}
    groups = {group: ([(name, {"private_ip": ip}) for name, ip in members], {}) for group, members in HOSTS.items()}
    everyone = [name for members in HOSTS.values() for name, _ in members]
    built = State(Inventory((everyone, common), **groups), Config())
    monkeypatch.setattr(context, "_CONTEXTS", {})
    with ctx_state.use(built):
        yield built, common


def _on_every_host(built: State, use: Any) -> list[Any]:
    results = []
    for host in built.inventory:
        with ctx_host.use(host):
            results.append(use())
    return results


def test_one_context_and_one_decryption_per_deploy(state: tuple[State, dict[str, Any]],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    built, _ = state
    runs: list[list[str]] = []
    real = secrets._sops

    def counted(args: list[str], *rest: Any, **kwargs: Any) -> str:
        runs.append(args)
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(secrets, "_sops", counted)
    contexts = _on_every_host(built, context.current)
    values = _on_every_host(built, lambda: context.current().secrets["k3s_token"])
    assert all(c is contexts[0] for c in contexts) and len(contexts) == 4
    assert len(set(values)) == 1 and len(values[0]) >= 32
    assert [args[0] for args in runs] == ["decrypt"]
    assert "k3s_token" in repr(contexts[0].secrets) and values[0] not in repr(contexts[0].secrets)


def test_endpoints_are_the_first_data_hosts(state: tuple[State, dict[str, Any]]) -> None:
    built, _ = state
    endpoints = _on_every_host(built, lambda: context.current().endpoints)[0]
    assert (endpoints.postgres_host, endpoints.redis_host) == ("10.0.1.4", "10.0.1.5")


def test_an_inventory_without_env_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "_CONTEXTS", {})
    built = State(Inventory((["cp-1"], {}), k3s_servers=(["cp-1"], {})), Config())
    with ctx_state.use(built), ctx_host.use(built.inventory.get_host("cp-1")), \
            pytest.raises(OperationError) as refused:
        context.current()
    assert str(refused.value) == ("cp-1: the inventory names no env; run `python provision.py <env>` to write it "
                                  "again")


def test_inside_a_role_missing_keys_come_from_the_role_defaults() -> None:
    """pyinfra's own data lookup with context.role's data_defaults: the inventory's value wins, even an
    empty one; a key it leaves out is ROLE_DEFAULTS'."""
    hosts = [("old", {}), ("new", {"lb_service_ports": [], "internet_access": False})]
    built = State(Inventory((hosts, {}), k3s_agents=(["old", "new"], {})), Config())
    keys = ("lb_service_ports", "internet_access", "k3s_taints", "ssh_user", "backup_s3_bucket")
    seen: dict[str, tuple[Any, ...]] = {}

    @context.role("Reads its data")
    def reads() -> None:
        from pyinfra.context import host

        seen[host.name] = tuple(host.data.get(key) for key in keys)

    with ctx_state.use(built):
        for host in built.inventory:
            with ctx_host.use(host):
                reads()
        assert built.inventory.get_host("old").data.get("lb_service_ports") is None, "outside a role: no defaults"
    assert seen["old"] == ([80, 443], True, [], "root", "")
    assert seen["new"] == ([], False, [], "root", "")
    assert set(ROLE_DEFAULTS) <= set(HOST_DATA), "every default is for a documented key"


def test_every_step_of_the_deploy_is_a_role_with_the_defaults() -> None:
    """Each function deploys/all.py calls is a pyinfra deploy declared with context.role (so its
    operations are grouped under its name and it sees ROLE_DEFAULTS). base() once lost its @deploy
    to a helper inserted between the decorator and it."""
    import ast
    import importlib

    source = (Path(__file__).resolve().parents[2] / "deploys" / "all.py").read_text()
    tree = ast.parse(source)
    modules = {alias.asname or alias.name: f"{node.module}.{alias.name}" for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module for alias in node.names}
    called = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name) and node.func.value.id in modules:
            called.append((modules[node.func.value.id], node.func.attr))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in modules:
            module, _, name = modules[node.func.id].rpartition(".")
            called.append((module, name))
    assert len(called) == 15, called
    not_roles = []
    for module, name in called:
        function = getattr(importlib.import_module(module), name)
        inner = getattr(function, "_inner", None)
        if inner is None or getattr(inner, "deploy_data", None) is not ROLE_DEFAULTS:
            not_roles.append(f"{module}.{name}")
    assert not_roles == []
