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
