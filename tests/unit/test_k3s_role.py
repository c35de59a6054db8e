"""The k3s role with pyinfra's @fake connector: a first server, a joining server and an agent.

No k3s binary or Kubernetes can be had on this machine, so the role's commands and the
config it renders are checked here; on localcloud's real machines it stops at the missing
binary (tests/e2e)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nornos_infra import secrets
from nornos_infra.kube.versions import K3S_VERSION

ROOT = Path(__file__).resolve().parents[2]
# Options from the k3s documentation (server and agent configuration references).
K3S_OPTIONS = {"token-file", "node-ip", "flannel-iface", "kubelet-arg", "node-label", "node-taint",
               "advertise-address", "tls-san", "disable-cloud-controller", "disable", "secrets-encryption",
               "write-kubeconfig-mode", "kube-apiserver-arg", "cluster-init", "server"}


def run_fake(tmp_path: Path, offline: bool = False, binary: Path | None = None) -> dict[str, Any]:
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(tmp_path / "age.txt"),
           "NORNOS_SECRETS_DIR": str(tmp_path / "secrets")}
    os.environ.update({k: env[k] for k in ("SOPS_AGE_KEY_FILE", "NORNOS_SECRETS_DIR")})
    try:
        if not (tmp_path / "secrets" / "dev.sops.yaml").exists():
            secrets.init("dev")
    finally:
        for k in ("SOPS_AGE_KEY_FILE", "NORNOS_SECRETS_DIR"):
            os.environ.pop(k, None)
    common: dict[str, Any] = {"env": "dev", "offline": offline, "lb_public_ipv4": "203.0.113.254",
                              "lb_private_ip": "10.0.1.254", "lb_service_ports": [80, 443],
                              "fake_responses": {"ip -o -4 addr show": "enp7s0"}}
    if binary is not None:
        common["k3s_binary_path"] = str(binary)
    spec = {"common": common, "hosts": {
        "k3s_servers": [["cp-1", {"private_ip": "10.0.1.1", "public_ipv4": "198.51.100.2", "pool": "cp"}],
                        ["cp-2", {"private_ip": "10.0.1.2", "public_ipv4": "198.51.100.3", "pool": "cp"}]],
        "k3s_agents": [["ag-1", {"private_ip": "10.0.1.3", "public_ipv4": "198.51.100.4", "pool": "agents",
                                 "k3s_taints": ["nornos.io/agents=true:NoSchedule"]}]],
    }}
    proc = subprocess.run([sys.executable, "-m", "tests.unit.helpers.fake_deploy"], input=json.dumps(spec),
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(out for out in proc.stdout.splitlines() if out.startswith("JSON:"))
    result: dict[str, Any] = json.loads(line[5:])
    # what pyinfra itself printed (the JSON line is this harness's record of uploads)
    result["_log"] = "\n".join(o for o in proc.stdout.splitlines() if not o.startswith("JSON:")) + proc.stderr
    return result


@pytest.fixture(scope="module")
def online(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_fake(tmp_path_factory.mktemp("k3s"))


def config_of(result: dict[str, Any], host: str) -> dict[str, Any]:
    return dict(yaml.safe_load(result[host]["files"]["/etc/rancher/k3s/config.yaml"]))


def test_first_server_inits_the_cluster(online: dict[str, Any]) -> None:
    config = config_of(online, "cp-1")
    assert set(config) <= K3S_OPTIONS
    assert config["cluster-init"] is True and "server" not in config
    assert config["node-ip"] == "10.0.1.1" and config["advertise-address"] == "10.0.1.1"
    assert config["flannel-iface"] == "enp7s0"
    assert config["disable-cloud-controller"] is True and "cloud-provider=external" in config["kubelet-arg"]
    assert "servicelb" in config["disable"] and config["secrets-encryption"] is True
    assert {"203.0.113.254", "10.0.1.254", "198.51.100.2", "10.0.1.1"} <= set(config["tls-san"])
    assert config["token-file"] == "/etc/rancher/k3s/token"
    assert "restricted" in online["cp-1"]["files"]["/etc/rancher/k3s/psa.yaml"]


def test_other_nodes_join_the_first_server(online: dict[str, Any]) -> None:
    joining = config_of(online, "cp-2")
    assert joining["server"] == "https://10.0.1.1:6443" and "cluster-init" not in joining
    agent = config_of(online, "ag-1")
    assert set(agent) <= K3S_OPTIONS
    assert agent["server"] == "https://10.0.1.1:6443"
    assert agent["node-taint"] == ["nornos.io/agents=true:NoSchedule"]
    assert "nornos.io/pool=agents" in agent["node-label"]
    assert "tls-san" not in agent and "disable" not in agent
    assert "ExecStart=/usr/local/bin/k3s agent" in online["ag-1"]["files"]["/etc/systemd/system/k3s.service"]


def test_the_release_binary_is_verified_before_install(online: dict[str, Any]) -> None:
    commands = "\n".join(online["cp-1"]["commands"])
    version = K3S_VERSION.replace("+", "%2B")
    assert f"releases/download/{version}/k3s" in commands
    assert "sha256sum -c -" in commands
    assert commands.index("sha256sum -c -") < commands.index("install -m 755 k3s /usr/local/bin/k3s")


def test_the_token_never_shows_in_commands(online: dict[str, Any], tmp_path: Path) -> None:
    token_files = [h["files"].get("/etc/rancher/k3s/token", "") for k, h in online.items() if k != "_log"]
    token = token_files[0].strip()
    assert len(token) == 64 and all(t.strip() == token for t in token_files)
    for name, host in online.items():
        if name != "_log":
            assert token not in "\n".join(host["commands"])
    assert token not in online["_log"]


def test_offline_without_a_binary_is_one_notice(tmp_path: Path) -> None:
    result = run_fake(tmp_path, offline=True)
    assert "k3s skipped: no binary" in result["_log"]
    for name, host in result.items():
        if name != "_log":
            # the cryptsetup install names its operation ("k3s server | cryptsetup ...") in its messages
            commands = [re.sub(r"nornos_who='[^']*'", "", c) for c in host["commands"]]
            assert not host["files"] and not any("k3s" in c for c in commands)


def test_an_air_gapped_binary_is_uploaded(tmp_path: Path) -> None:
    binary = tmp_path / "k3s"
    binary.write_bytes(b"\x7fELF fake k3s for the install path")
    result = run_fake(tmp_path, offline=True, binary=binary)
    assert result["cp-1"]["files"]["/usr/local/bin/k3s"].startswith("\x7fELF")
    assert not any("curl" in c for c in result["cp-1"]["commands"])
    assert any("systemctl" in c and "k3s" in c for c in result["cp-1"]["commands"])
