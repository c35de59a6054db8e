"""The fetched kubeconfig: reachable server address, context nornos-<env>, mode 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from nornos_infra import kubeconfig
from nornos_infra.errors import UserError

K3S_YAML = """
apiVersion: v1
clusters:
- cluster: {certificate-authority-data: Q0E=, server: 'https://127.0.0.1:6443'}
  name: default
contexts:
- context: {cluster: default, user: default}
  name: default
current-context: default
kind: Config
users:
- name: default
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""


def test_rewrite_points_at_the_endpoint_and_names_the_context() -> None:
    config = yaml.safe_load(kubeconfig.rewrite(K3S_YAML, "dev", "203.0.113.254"))
    assert config["clusters"][0]["cluster"]["server"] == "https://203.0.113.254:6443"
    assert config["current-context"] == "nornos-dev"
    assert config["contexts"][0] == {"context": {"cluster": "nornos-dev", "user": "nornos-dev"}, "name": "nornos-dev"}
    assert config["users"][0]["user"]["client-key-data"] == "S0VZ"


def test_endpoint_is_never_the_load_balancer() -> None:
    """Finding 1 of issue 10: the LB cannot filter sources, so kubectl talks to a control plane."""
    for data in ({"lb_service_ports": [80, 443, 6443], "kube_api_via_lb": True},
                 {"lb_service_ports": [80, 443], "kube_api_via_lb": False}):
        assert kubeconfig.endpoint({**data, "lb_public_ipv4": "203.0.113.1",
                                    "public_ipv4": "198.51.100.2"}) == "198.51.100.2"


def test_every_further_control_plane_is_a_context_of_its_own() -> None:
    config = yaml.safe_load(kubeconfig.rewrite(K3S_YAML, "prod", "198.51.100.2", ["198.51.100.3", "198.51.100.4"]))
    servers = {c["name"]: c["cluster"]["server"] for c in config["clusters"]}
    assert servers == {"nornos-prod": "https://198.51.100.2:6443", "nornos-prod-2": "https://198.51.100.3:6443",
                       "nornos-prod-3": "https://198.51.100.4:6443"}
    assert all(c["cluster"]["certificate-authority-data"] == "Q0E=" for c in config["clusters"])
    contexts = {c["name"]: c["context"] for c in config["contexts"]}
    assert contexts["nornos-prod-3"] == {"cluster": "nornos-prod-3", "user": "nornos-prod"}
    assert config["current-context"] == "nornos-prod"


def test_a_symlink_at_the_destination_is_replaced_not_written_through(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 11 of issue 10: the kubeconfig holds the cluster's admin key; a symlink planted at
    .kube/nornos-<env>.yaml must not make us write it into another file."""
    monkeypatch.setenv("NORNOS_KUBECONFIG_DIR", str(tmp_path / "kube"))
    (tmp_path / "kube").mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("someone else's file\n")
    victim.chmod(0o644)
    (tmp_path / "kube" / "nornos-dev.yaml").symlink_to(victim)
    path = kubeconfig.save("dev", "secret: yes\n")
    assert victim.read_text() == "someone else's file\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not path.is_symlink() and path.read_text() == "secret: yes\n"
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert [p.name for p in (tmp_path / "kube").iterdir()] == ["nornos-dev.yaml"]  # no temporary file left


def test_a_symlinked_directory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "kube").symlink_to(elsewhere)
    monkeypatch.setenv("NORNOS_KUBECONFIG_DIR", str(tmp_path / "kube"))
    with pytest.raises(UserError, match="symlink"):
        kubeconfig.save("dev", "secret: yes\n")
    assert list(elsewhere.iterdir()) == []


def test_saved_with_mode_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORNOS_KUBECONFIG_DIR", str(tmp_path / "kube"))
    path = kubeconfig.save("dev", "x")
    assert path == tmp_path / "kube" / "nornos-dev.yaml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
