"""The cluster's kubeconfig, fetched from the first k3s server: its server address rewritten
to the first control plane's public address (the API is served there, to the admin networks
only; the load balancer never carries 6443: docs/adr/0004-kube-api-exposure.md), context
``nornos-<env>``, and one more context per further control plane (``nornos-<env>-<n>``) for
when the first is down. Written 0600, never through a symlink or into someone else's file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from nornos_infra import paths

REMOTE_PATH = "/etc/rancher/k3s/k3s.yaml"


def local_path(env: str) -> Path:
    return Path(os.environ.get("NORNOS_KUBECONFIG_DIR") or paths.kube_dir()) / f"nornos-{env}.yaml"


def rewrite(text: str, env: str, endpoint: str, spares: list[str] | None = None) -> str:
    """k3s writes https://127.0.0.1:6443 and the name ``default``; make it reachable and named.
    ``spares``: the other control planes' addresses, one extra cluster and context each."""
    config: dict[str, Any] = yaml.safe_load(text)
    name = f"nornos-{env}"
    clusters = config.get("clusters", [])
    for cluster in clusters:
        cluster["name"] = name
        cluster["cluster"]["server"] = f"https://{endpoint}:6443"
    for user in config.get("users", []):
        user["name"] = name
    for context in config.get("contexts", []):
        context["name"] = name
        context["context"]["cluster"] = name
        context["context"]["user"] = name
    if clusters:
        for n, address in enumerate(spares or [], start=2):
            spare = f"{name}-{n}"
            clusters.append({"name": spare, "cluster": {**clusters[0]["cluster"], "server": f"https://{address}:6443"}})
            config.setdefault("contexts", []).append({"name": spare, "context": {"cluster": spare, "user": name}})
    config["current-context"] = name
    return yaml.safe_dump(config, sort_keys=False)


def save(env: str, text: str) -> Path:
    """Write the kubeconfig (it holds the cluster's admin key) so that only we can read it: to a
    new 0600 file beside the destination, then renamed over it. A symlink or another file at the
    destination is replaced, never written through; a directory that is a symlink or not ours is
    refused."""
    import tempfile

    from nornos_infra.errors import UserError

    path = local_path(env)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(path.parent)
    if os.path.islink(path.parent) or info.st_uid != os.geteuid():
        raise UserError(f"{path.parent} is a symlink or not owned by you; refusing to write the cluster's "
                        "credentials there (remove it, or set NORNOS_KUBECONFIG_DIR)")
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"{path} is a directory; remove it to fetch the kubeconfig")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600, O_EXCL
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)  # replaces a symlink itself, never its target
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def endpoint(data: Any) -> str:
    """Where kubectl reaches the API: the first control plane's public address (never the load
    balancer: it cannot filter sources, so it never carries 6443)."""
    return str(data.get("public_ipv4"))


def fetch(env: str, inventory_file: Path, key_file: Path | None = None) -> Path:
    """``invoke kubeconfig``: read the inventory, fetch from the first server over SFTP (its host key
    verified against the inventory's known_hosts file, as pyinfra does), rewrite, save."""
    import paramiko

    from nornos_infra import inventory
    from nornos_infra.errors import UserError
    from nornos_infra.ssh_access import SshAccess

    servers = sorted(inventory.load(inventory_file).hosts("k3s_servers"), key=lambda h: h.name)
    if not servers:
        raise UserError(f"{inventory_file} has no k3s_servers")
    name, merged = servers[0].name, servers[0].data
    spares = [h.public_ipv4 for h in servers[1:] if h.public_ipv4]
    access = SshAccess.from_data(merged, key=key_file)
    client = access.paramiko_client()
    try:
        client.connect(str(merged["ssh_hostname"]), port=int(merged.get("ssh_port") or 22), username=access.user,
                       timeout=10, allow_agent=access.key is None, look_for_keys=access.key is None,
                       key_filename=str(access.key) if access.key else None)
        with client.open_sftp() as sftp, sftp.open(REMOTE_PATH) as handle:
            text = handle.read().decode()
    except paramiko.BadHostKeyException:
        raise UserError(f"{name} ({merged['ssh_hostname']}) presented a host key that is not the one pinned in "
                        f"{access.known_hosts}: refusing to connect (see docs/RUNBOOK.md, 'Host keys')") from None
    except paramiko.SSHException as exc:
        if "known_hosts" not in str(exc):
            raise UserError(f"cannot fetch {REMOTE_PATH} from {name} ({merged['ssh_hostname']}): {exc}; "
                            "is k3s installed there (deploys/all.py)?") from None
        raise UserError(f"{name} ({merged['ssh_hostname']}) has no pinned host key in {access.known_hosts}: "
                        "refusing to connect; run provision.py to rewrite it (see docs/RUNBOOK.md, 'Host keys')") \
            from None
    except OSError as exc:
        raise UserError(f"cannot fetch {REMOTE_PATH} from {name} ({merged['ssh_hostname']}): {exc}; "
                        "is k3s installed there (deploys/all.py)?") from None
    finally:
        client.close()
    return save(env, rewrite(text, env, endpoint(merged), spares))
