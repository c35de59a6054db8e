"""k3s servers and agents on the private network, at the pinned version.

- Binary: the release ``k3s_version`` names (env file ``k3s.version``), checked against the
  checksum pinned for it in nornos_infra/k3s_releases.py. ``k3s_binary_path`` (a file on the
  machine running pyinfra, for air-gapped installs) is checked and uploaded; otherwise the
  release binary is downloaded on the host, and the release's own sha256sum file must list the
  pinned figure too. A failed download or checksum fails the deploy; so does a host running a
  newer k3s than ``k3s_version`` (k3s cannot go back: raise the env file's version instead).
  Where the inventory says the hosts have no internet access (``internet_access``: False on
  localcloud) and no binary file is given, the role says "k3s skipped: no binary" once per host
  and does nothing else.
- Config: /etc/rancher/k3s/config.yaml per node; the first server (lowest name) runs
  ``cluster-init``, the other servers and the agents join it over the private network;
  ``node-ip`` and ``flannel-iface`` are the private ones; the external Hetzner cloud
  controller replaces k3s's own (``disable-cloud-controller``, ``cloud-provider=external``,
  no servicelb); secrets are encrypted at rest; Pod Security ``restricted`` is the default
  (kube-system exempt); the agent pool is labelled and tainted.
- Every node gets cryptsetup (the default StorageClass is LUKS-encrypted), without internet access too.
- The token reaches the host as a secret file (never in a diff); k3s restarts only when its
  binary, config or token changed, one node at a time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pyinfra import logger
from pyinfra.api.exceptions import OperationError
from pyinfra.context import host
from pyinfra.facts.files import Sha256File
from pyinfra.facts.server import Command
from pyinfra.operations import files, server, systemd

from nornos_infra import k3s_releases
from nornos_infra.errors import UserError
from nornos_infra.kube.versions import K3S_VERSION
from nornos_infra.paths import TEMPLATES
from nornos_infra.roles import context
from nornos_infra.roles.ops import apt_packages, apt_update, secret_file

BINARY = "/usr/local/bin/k3s"


def first_server() -> str:
    names = sorted(h.name for h in host.inventory.get_group("k3s_servers"))
    if not names:
        raise OperationError("the inventory has no k3s_servers")
    return names[0]


def server_url(data: Any) -> str:
    """Joining nodes talk to the first server's private address (or ``k3s_join_address``); k3s's own
    client-side load balancer then follows every server."""
    target = data.get("k3s_join_address") or host.inventory.get_host(first_server()).data.get("private_ip")
    return f"https://{target}:6443"


def node_config(data: Any, name: str, role: str, flannel_iface: str) -> dict[str, Any]:
    """The k3s config.yaml of one node (documented k3s options only)."""
    private_ip = data.get("private_ip")
    config: dict[str, Any] = {
        "token-file": "/etc/rancher/k3s/token",
        "node-ip": private_ip,
        "flannel-iface": flannel_iface,
        "kubelet-arg": ["cloud-provider=external"],
        "node-label": [f"nornos.io/pool={data.get('pool')}"],
    }
    taints = list(data.get("k3s_taints") or [])
    if taints:
        config["node-taint"] = taints
    if role == "k3s_server":
        sans = [a for a in (data.get("lb_public_ipv4"), data.get("lb_private_ip"), data.get("public_ipv4"),
                            private_ip) if a]
        config.update({
            "advertise-address": private_ip,
            "tls-san": sans,
            "disable-cloud-controller": True,
            # the Hetzner LB fronts the cluster and the CSI driver's encrypted class is the default
            "disable": ["servicelb", "local-storage"],
            "secrets-encryption": True,
            "write-kubeconfig-mode": "0600",
            "kube-apiserver-arg": ["admission-control-config-file=/etc/rancher/k3s/psa.yaml"],
        })
        if name == first_server():
            config["cluster-init"] = True
        else:
            config["server"] = server_url(data)
    else:
        config["server"] = server_url(data)
    return config


def binary_source() -> str | None:
    """'file' (air-gapped upload), 'download', or None (no internet access and no file: skip)."""
    if host.data.get("k3s_binary_path"):
        return "file"
    if not host.data.get("internet_access"):
        return None
    return "download"


def wanted_version() -> str:
    return str(host.data.get("k3s_version") or K3S_VERSION)


def _pinned(version: str) -> str:
    try:
        return k3s_releases.pinned_sha256(version)
    except UserError as exc:
        raise OperationError(str(exc)) from None


def _install_binary(source: str, version: str) -> Any:
    pinned = _pinned(version)
    if source == "file":
        local = Path(str(host.data.get("k3s_binary_path"))).expanduser()
        if not local.is_file():
            raise OperationError(f"k3s_binary_path {local} is not a file")
        digest = hashlib.sha256(local.read_bytes()).hexdigest()
        if digest != pinned:
            raise OperationError(f"{local}: sha256 {digest} is not the pinned {version} checksum {pinned}")
        return files.put(name=f"k3s {version} binary (air-gapped)", src=str(local), dest=BINARY, mode="755")
    current = host.get_fact(Sha256File, path=BINARY)
    if current == pinned:
        return None  # this release is in place
    # one script, not a list: pyinfra runs each listed command in a shell of its own, so the
    # working directory and $d would not reach the next one
    return server.shell(name=f"Download k3s {version} and verify its pinned checksum", commands=["\n".join([
        "set -e; d=$(mktemp -d); cd $d",
        f"curl -fsSL --retry 3 -o k3s {k3s_releases.download_url(version, 'k3s')}",
        f"curl -fsSL --retry 3 -o sha256sum-amd64.txt {k3s_releases.download_url(version, 'sha256sum-amd64.txt')}",
        # the release's own list must agree with the pin: a wrong pin fails here, loudly
        f"grep -qx '{pinned}  k3s' sha256sum-amd64.txt || {{ echo 'the release sha256sum-amd64.txt of {version}"
        f" does not list the pinned checksum {pinned}: check nornos_infra/k3s_releases.py' >&2; exit 1; }}",
        f"echo '{pinned}  k3s' | sha256sum -c -",
        f"install -m 755 k3s {BINARY}; cd /; rm -rf $d",
    ])])


def _refuse_downgrade(version: str) -> None:
    """k3s (etcd, its datastore migrations) only goes forward: never put an older binary over a newer one."""
    installed = str(host.get_fact(Command, command=f"{BINARY} --version 2>/dev/null | head -1 || true") or "")
    if "+k3s" not in installed:
        return
    try:
        running = k3s_releases.parse(installed)
    except UserError:
        return
    if running > k3s_releases.parse(version):
        raise OperationError(f"{host.name} runs k3s {running}, newer than k3s_version {version}: k3s cannot be "
                             f"downgraded; set k3s.version: {running} in the env file and run provision.py")


def _k3s(role: str) -> None:
    # the CSI driver's default StorageClass is LUKS-encrypted: the node opens the volumes
    apt_update(name="Update apt lists", cache_time=6 * 3600)
    apt_packages(name="cryptsetup (encrypted volumes)", packages=["cryptsetup"])
    source = binary_source()
    if source is None:
        logger.warning(f"{host.name}: k3s skipped: no binary (the hosts have no internet access; set "
                       f"k3s_binary_path to an air-gapped k3s {wanted_version()} binary to install it)")
        return
    private_ip = host.data.get("private_ip")
    iface = host.get_fact(Command, command=f"ip -o -4 addr show | awk '$4 ~ /^{private_ip}\\// {{print $2}}'")
    if not iface:
        raise OperationError(f"{host.name}: no interface holds the private address {private_ip}")
    version = wanted_version()
    _refuse_downgrade(version)
    values = context.current().secrets
    binary = _install_binary(source, version)
    files.directory(name="k3s config directory", path="/etc/rancher/k3s", mode="700")
    token = secret_file(name="k3s token", path="/etc/rancher/k3s/token", content=values["k3s_token"] + "\n")
    config = files.put(name="k3s config.yaml", dest="/etc/rancher/k3s/config.yaml", mode="600",
                       src=_text(yaml.safe_dump(node_config(host.data, host.name, role, str(iface).strip()),
                                                sort_keys=True)))
    # called for every node (with _if) so that servers and agents run the same operation sequence
    is_server = role == "k3s_server"
    psa = files.put(name="Pod Security: restricted by default (servers)", src=str(TEMPLATES / "k3s-psa.yaml"),
                    dest="/etc/rancher/k3s/psa.yaml", mode="600", _if=lambda: is_server)
    unit = files.template(name="k3s systemd unit", src=str(TEMPLATES / "k3s.service.j2"),
                          dest="/etc/systemd/system/k3s.service", mode="644",
                          mode_arg="server" if role == "k3s_server" else "agent")
    changed = [op for op in (binary, token, config, unit) if op is not None] + ([psa] if is_server else [])
    systemd.service(name="k3s enabled and running", service="k3s", enabled=True, running=True, _serial=True)
    systemd.service(name="k3s: restart on change, one node at a time", service="k3s", restarted=True,
                    daemon_reload=True, _serial=True, _if=lambda: any(op.did_change() for op in changed))


def _text(text: str) -> Any:
    from io import StringIO

    return StringIO(text)


@context.role("k3s server")
def k3s_server() -> None:
    _k3s("k3s_server")


@context.role("k3s agent")
def k3s_agent() -> None:
    _k3s("k3s_agent")
