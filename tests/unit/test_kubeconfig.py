"""The fetched kubeconfig: reachable server address, context nornos-<env>, mode 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from nornos_infra import kubeconfig

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


def test_endpoint_is_the_lb_only_when_it_forwards_6443() -> None:
    assert kubeconfig.endpoint({"lb_service_ports": [80, 443, 6443], "lb_public_ipv4": "203.0.113.1",
                                "public_ipv4": "198.51.100.2"}) == "203.0.113.1"
    assert kubeconfig.endpoint({"lb_service_ports": [80, 443], "lb_public_ipv4": "203.0.113.1",
                                "public_ipv4": "198.51.100.2"}) == "198.51.100.2"


def test_saved_with_mode_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORNOS_KUBECONFIG_DIR", str(tmp_path / "kube"))
    path = kubeconfig.save("dev", "x")
    assert path == tmp_path / "kube" / "nornos-dev.yaml"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
