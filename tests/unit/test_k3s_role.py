"""The k3s role with pyinfra's @fake connector: a first server, a joining server and an agent.

No k3s binary or Kubernetes can be had on this machine, so the role's commands and the
config it renders are checked here; on localcloud's real machines it stops at the missing
binary (tests/e2e)."""

from __future__ import annotations

import hashlib
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
from nornos_infra.k3s_releases import PINNED_SHA256
from nornos_infra.kube.versions import K3S_VERSION

ROOT = Path(__file__).resolve().parents[2]
# Options from the k3s documentation (server and agent configuration references).
K3S_OPTIONS = {"token-file", "node-ip", "flannel-iface", "kubelet-arg", "node-label", "node-taint",
               "advertise-address", "tls-san", "disable-cloud-controller", "disable", "secrets-encryption",
               "write-kubeconfig-mode", "kube-apiserver-arg", "cluster-init", "server"}


def ip_addr(*entries: tuple[str, str]) -> str:
    """What ``ip -o -4 addr show`` prints on a Hetzner server: loopback, public, then the given (iface, address)."""
    lines = ["1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever",
             "2: eth0    inet 198.51.100.9/32 metric 100 scope global dynamic eth0\\       valid_lft 86313sec"]
    for n, (iface, address) in enumerate(entries, start=3):
        lines.append(f"{n}: {iface}    inet {address}/32 brd {address} scope global dynamic {iface}\\       "
                     "valid_lft 86313sec preferred_lft 86313sec")
    return "\n".join(lines) + "\n"


# Each node's interfaces, with decoys: an address that starts with another node's (10.0.1.1 vs 10.0.1.10)
# and the private address of a neighbour on another interface name.
INTERFACES = {
    "cp-1": ip_addr(("enp7s0", "10.0.1.1"), ("enp8s0", "10.0.1.10")),
    "cp-2": ip_addr(("ens10", "10.0.1.2"), ("enp7s0", "110.0.1.2")),
    "ag-1": ip_addr(("enp9s0", "10.0.1.3")),
}


def run_fake(tmp_path: Path, internet_access: bool | None = True, binary: Path | None = None, expect_ok: bool = True,
             hosts: dict[str, dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """Run the k3s roles against pyinfra's @fake hosts; ``hosts`` adds data per host, ``extra`` goes to
    the harness (k3s_sha256), k3s_version to the inventory. With expect_ok=False the failed run's
    output is returned as {"_log": ...}."""
    env = {**os.environ, "SOPS_AGE_KEY_FILE": str(tmp_path / "age.txt"),
           "NORNOS_SECRETS_DIR": str(tmp_path / "secrets")}
    os.environ.update({k: env[k] for k in ("SOPS_AGE_KEY_FILE", "NORNOS_SECRETS_DIR")})
    try:
        if not (tmp_path / "secrets" / "dev.sops.yaml").exists():
            secrets.init("dev")
    finally:
        for k in ("SOPS_AGE_KEY_FILE", "NORNOS_SECRETS_DIR"):
            os.environ.pop(k, None)
    common: dict[str, Any] = {"env": "dev", "internet_access": internet_access, "lb_public_ipv4": "203.0.113.254",
                              "lb_private_ip": "10.0.1.254", "lb_service_ports": [80, 443]}
    if internet_access is None:  # an inventory that leaves it out
        del common["internet_access"]
    if binary is not None:
        common["k3s_binary_path"] = str(binary)
    if "k3s_version" in extra:  # the inventory's (env file k3s.version)
        common["k3s_version"] = extra.pop("k3s_version")
    data = {
        "cp-1": {"private_ip": "10.0.1.1", "public_ipv4": "198.51.100.2", "pool": "cp"},
        "cp-2": {"private_ip": "10.0.1.2", "public_ipv4": "198.51.100.3", "pool": "cp"},
        "ag-1": {"private_ip": "10.0.1.3", "public_ipv4": "198.51.100.4", "pool": "agents",
                 "k3s_taints": ["nornos.io/agents=true:NoSchedule"]},
    }
    for name in data:
        data[name] = {"fake_ip_addr": INTERFACES[name], **data[name], **(hosts or {}).get(name, {})}
    spec = {"common": common, **extra, "hosts": {
        "k3s_servers": [["cp-1", data["cp-1"]], ["cp-2", data["cp-2"]]],
        "k3s_agents": [["ag-1", data["ag-1"]]],
    }}
    proc = subprocess.run([sys.executable, "-m", "tests.unit.helpers.fake_deploy"], input=json.dumps(spec),
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    if not expect_ok:
        assert proc.returncode != 0, proc.stdout[-3000:]
        return {"_log": proc.stdout + proc.stderr}
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
    assert config["flannel-iface"] == "enp7s0"  # found by the role's own command (not 10.0.1.10's enp8s0)
    assert config["disable-cloud-controller"] is True and "cloud-provider=external" in config["kubelet-arg"]
    assert "servicelb" in config["disable"] and config["secrets-encryption"] is True
    assert {"203.0.113.254", "10.0.1.254", "198.51.100.2", "10.0.1.1"} <= set(config["tls-san"])
    assert config["token-file"] == "/etc/rancher/k3s/token"
    # the kubeconfig holds cluster-admin credentials: readable by root only
    assert config["write-kubeconfig-mode"] == "0600"
    # Pod Security restricted by default: the API server reads the admission config the role uploads
    psa_arg = "admission-control-config-file=/etc/rancher/k3s/psa.yaml"
    assert psa_arg in config["kube-apiserver-arg"]
    assert "/etc/rancher/k3s/psa.yaml" in online["cp-1"]["files"]


@pytest.mark.parametrize("host", ["cp-1", "cp-2"])
def test_servers_get_the_pod_security_admission_config(online: dict[str, Any], host: str) -> None:
    psa = yaml.safe_load(online[host]["files"]["/etc/rancher/k3s/psa.yaml"])
    assert (psa["apiVersion"], psa["kind"]) == ("apiserver.config.k8s.io/v1", "AdmissionConfiguration")
    plugin, = psa["plugins"]
    assert plugin["name"] == "PodSecurity"
    conf = plugin["configuration"]
    assert (conf["apiVersion"], conf["kind"]) == ("pod-security.admission.config.k8s.io/v1", "PodSecurityConfiguration")
    assert conf["defaults"] == {"enforce": "restricted", "enforce-version": "latest", "audit": "restricted",
                                "audit-version": "latest", "warn": "restricted", "warn-version": "latest"}
    assert conf["exemptions"] == {"usernames": [], "runtimeClasses": [], "namespaces": ["kube-system"]}
    config = config_of(online, host)
    assert "admission-control-config-file=/etc/rancher/k3s/psa.yaml" in config["kube-apiserver-arg"]
    assert int(config["write-kubeconfig-mode"], 8) & 0o077 == 0


def test_agents_get_no_server_settings(online: dict[str, Any]) -> None:
    assert "/etc/rancher/k3s/psa.yaml" not in online["ag-1"]["files"]
    agent = config_of(online, "ag-1")
    assert not {"kube-apiserver-arg", "write-kubeconfig-mode", "secrets-encryption"} & set(agent)


def test_each_node_uses_the_interface_that_holds_its_private_address(online: dict[str, Any]) -> None:
    assert {h: config_of(online, h)["flannel-iface"] for h in ("cp-1", "cp-2", "ag-1")} == {
        "cp-1": "enp7s0", "cp-2": "ens10", "ag-1": "enp9s0"}


def test_no_interface_with_the_private_address_stops_that_node(tmp_path: Path) -> None:
    result = run_fake(tmp_path, expect_ok=False, hosts={"ag-1": {"fake_ip_addr": ip_addr(("enp7s0", "10.0.1.33"))}})
    assert "ag-1: no interface holds the private address 10.0.1.3" in result["_log"]


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
    pinned = PINNED_SHA256[K3S_VERSION]
    assert f"releases/download/{version}/k3s" in commands
    # the pinned figure is what the binary is checked against; the release's own list must name it too
    assert f"releases/download/{version}/sha256sum-amd64.txt" in commands
    assert f"grep -qx '{pinned}  k3s' sha256sum-amd64.txt" in commands
    assert f"echo '{pinned}  k3s' | sha256sum -c -" in commands
    check = commands.index(f"echo '{pinned}  k3s' | sha256sum -c -")
    assert check < commands.index("install -m 755 k3s /usr/local/bin/k3s")


def test_the_download_checks_run_as_the_host_runs_them(tmp_path: Path) -> None:
    """The role's download script, run by bash with curl replaced: the right binary installs; a wrong
    binary, or a release list that does not name the pin, stops before anything is installed."""
    pinned_binary = b"\x7fELF the release binary"
    pin = hashlib.sha256(pinned_binary).hexdigest()
    result = run_fake(tmp_path, k3s_sha256=pin)
    script = next(c for c in result["cp-1"]["commands"] if "sha256sum-amd64.txt" in c)

    def run(binary: bytes, listing: str) -> subprocess.CompletedProcess[str]:
        bindir, dest = tmp_path / "bin", tmp_path / "installed-k3s"
        bindir.mkdir(exist_ok=True)
        (bindir / "binary").write_bytes(binary)
        (bindir / "listing").write_text(listing)
        (bindir / "curl").write_text(f"""#!/bin/sh
out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
case "$out" in k3s) cp {bindir}/binary k3s ;; *) cp {bindir}/listing "$out" ;; esac
""")
        (bindir / "curl").chmod(0o755)
        dest.unlink(missing_ok=True)
        return subprocess.run(["bash", "-c", script.replace("/usr/local/bin/k3s", str(dest))], capture_output=True,
                              text=True, env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}, timeout=30,
                              cwd=tmp_path)

    ok = run(pinned_binary, f"{'0' * 64}  k3s-airgap-images-amd64.tar\n{pin}  k3s\n")
    assert ok.returncode == 0, (script, ok.stdout, ok.stderr)
    assert (tmp_path / "installed-k3s").read_bytes() == pinned_binary
    tampered = run(b"\x7fELF something else", f"{pin}  k3s\n")
    assert tampered.returncode != 0 and "FAILED" in tampered.stdout + tampered.stderr
    assert not (tmp_path / "installed-k3s").exists()
    other_list = run(pinned_binary, f"{'ab' * 32}  k3s\n")
    assert other_list.returncode != 0 and not (tmp_path / "installed-k3s").exists()
    assert f"does not list the pinned checksum {pin}: check nornos_infra/k3s_releases.py" in other_list.stderr


def test_the_env_files_k3s_version_is_installed(tmp_path: Path) -> None:
    result = run_fake(tmp_path, k3s_version="v1.34.3+k3s1")
    commands = "\n".join(result["cp-1"]["commands"])
    assert "releases/download/v1.34.3%2Bk3s1/k3s" in commands and K3S_VERSION.replace("+", "%2B") not in commands
    assert f"echo '{PINNED_SHA256['v1.34.3+k3s1']}  k3s' | sha256sum -c -" in commands


def test_a_version_without_a_pinned_checksum_is_refused(tmp_path: Path) -> None:
    result = run_fake(tmp_path, k3s_version="v1.36.9+k3s1", expect_ok=False)
    assert "k3s v1.36.9+k3s1 has no pinned checksum in nornos_infra/k3s_releases.py" in result["_log"]


def test_a_newer_k3s_on_a_host_is_never_downgraded(tmp_path: Path) -> None:
    newer = {"/usr/local/bin/k3s --version": "k3s version v1.35.2+k3s1 (0badcafe)"}
    result = run_fake(tmp_path, hosts={"cp-2": {"fake_responses": newer}}, expect_ok=False)
    assert (f"cp-2 runs k3s v1.35.2+k3s1, newer than k3s_version {K3S_VERSION}: k3s cannot be downgraded; "
            "set k3s.version: v1.35.2+k3s1 in the env file and run provision.py") in result["_log"]


def test_the_token_never_shows_in_commands(online: dict[str, Any], tmp_path: Path) -> None:
    token_files = [h["files"].get("/etc/rancher/k3s/token", "") for k, h in online.items() if k != "_log"]
    token = token_files[0].strip()
    assert len(token) == 64 and all(t.strip() == token for t in token_files)
    for name, host in online.items():
        if name != "_log":
            assert token not in "\n".join(host["commands"])
    assert token not in online["_log"]


INSTALLED = {"/usr/local/bin/k3s --version": f"k3s version {K3S_VERSION} (0123abcd)",
             "sha256sum /usr/local/bin/k3s": PINNED_SHA256[K3S_VERSION] + "  /usr/local/bin/k3s"}


def test_the_pinned_version_already_installed_is_not_downloaded_again(tmp_path: Path) -> None:
    result = run_fake(tmp_path, hosts={"cp-1": {"fake_responses": INSTALLED}})
    assert not any("curl" in c or "install -m 755 k3s" in c for c in result["cp-1"]["commands"])
    assert any("curl" in c for c in result["cp-2"]["commands"])  # the others still get it
    # another version installed: replaced by the pinned one
    older = {"/usr/local/bin/k3s --version": "k3s version v1.34.3+k3s1 (fedcba98)",
             "sha256sum /usr/local/bin/k3s": PINNED_SHA256["v1.34.3+k3s1"] + "  /usr/local/bin/k3s"}
    result = run_fake(tmp_path, hosts={"cp-1": {"fake_responses": older}})
    commands = "\n".join(result["cp-1"]["commands"])
    assert "install -m 755 k3s /usr/local/bin/k3s" in commands and "sha256sum -c -" in commands


def test_an_air_gapped_binary_that_is_missing_is_an_error(tmp_path: Path) -> None:
    result = run_fake(tmp_path, internet_access=False, binary=tmp_path / "no-such-k3s", expect_ok=False)
    assert f"k3s_binary_path {tmp_path / 'no-such-k3s'} is not a file" in result["_log"]


def test_an_air_gapped_binary_with_the_wrong_checksum_is_an_error(tmp_path: Path) -> None:
    binary = tmp_path / "k3s"
    binary.write_bytes(b"\x7fELF not the release")
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    result = run_fake(tmp_path, internet_access=False, binary=binary, expect_ok=False, k3s_sha256="ef" * 32)
    assert f"sha256 {digest} is not the pinned {K3S_VERSION} checksum {'ef' * 32}" in result["_log"]
    ok = run_fake(tmp_path, internet_access=False, binary=binary, k3s_sha256=digest)
    assert ok["cp-1"]["files"]["/usr/local/bin/k3s"].startswith("\x7fELF")


def test_no_internet_access_and_no_binary_is_one_notice(tmp_path: Path) -> None:
    result = run_fake(tmp_path, internet_access=False)
    assert "k3s skipped: no binary" in result["_log"]
    for name, host in result.items():
        if name != "_log":
            # the cryptsetup install names its operation ("k3s server | cryptsetup ...") in its messages
            commands = [re.sub(r"nornos_who='[^']*'", "", c) for c in host["commands"]]
            assert not host["files"] and not any("k3s" in c for c in commands)


def test_an_inventory_without_internet_access_downloads_as_the_role_defaults_say(tmp_path: Path) -> None:
    result = run_fake(tmp_path, internet_access=None)
    assert "k3s skipped" not in result["_log"]
    assert any("curl" in c and "/k3s" in c for c in result["cp-1"]["commands"])
    assert "node-taint" not in config_of(result, "cp-1"), "no k3s_taints: none (ROLE_DEFAULTS)"


def test_an_air_gapped_binary_is_uploaded(tmp_path: Path) -> None:
    binary = tmp_path / "k3s"
    binary.write_bytes(b"\x7fELF fake k3s for the install path")
    result = run_fake(tmp_path, internet_access=False, binary=binary,
                      k3s_sha256=hashlib.sha256(binary.read_bytes()).hexdigest())
    assert result["cp-1"]["files"]["/usr/local/bin/k3s"].startswith("\x7fELF")
    assert not any("curl" in c for c in result["cp-1"]["commands"])
    assert any("systemctl" in c and "k3s" in c for c in result["cp-1"]["commands"])
