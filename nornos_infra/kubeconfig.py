"""The cluster's kubeconfig, fetched from the first k3s server: its server address rewritten
to the reachable endpoint (the load balancer when it forwards 6443, else the first server's
public address), context ``nornos-<env>``, mode 0600."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
REMOTE_PATH = "/etc/rancher/k3s/k3s.yaml"


def local_path(env: str) -> Path:
    return Path(os.environ.get("NORNOS_KUBECONFIG_DIR", ROOT / ".kube")) / f"nornos-{env}.yaml"


def rewrite(text: str, env: str, endpoint: str) -> str:
    """k3s writes https://127.0.0.1:6443 and the name ``default``; make it reachable and named."""
    config: dict[str, Any] = yaml.safe_load(text)
    name = f"nornos-{env}"
    for cluster in config.get("clusters", []):
        cluster["name"] = name
        cluster["cluster"]["server"] = f"https://{endpoint}:6443"
    for user in config.get("users", []):
        user["name"] = name
    for context in config.get("contexts", []):
        context["name"] = name
        context["context"]["cluster"] = name
        context["context"]["user"] = name
    config["current-context"] = name
    return yaml.safe_dump(config, sort_keys=False)


def save(env: str, text: str) -> Path:
    path = local_path(env)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return path


def endpoint(data: Any) -> str:
    """Where kubectl reaches the API: the LB when it forwards 6443, else the first server."""
    if 6443 in (data.get("lb_service_ports") or []) or data.get("kube_api_via_lb"):
        return str(data.get("lb_public_ipv4"))
    return str(data.get("public_ipv4"))


def fetch(env: str, inventory_file: Path, key_file: Path | None = None) -> Path:
    """``invoke kubeconfig``: read the inventory, fetch from the first server over SFTP (its host key
    verified against the inventory's known_hosts file, as pyinfra does), rewrite, save."""
    import runpy

    import paramiko

    from nornos_infra.errors import UserError
    from nornos_infra.ssh_access import SshAccess

    if not inventory_file.exists():
        raise UserError(f"{inventory_file} does not exist; run `python provision.py {env}` first")
    hosts, data = runpy.run_path(str(inventory_file)).get("k3s_servers", ([], {}))
    if not hosts:
        raise UserError(f"{inventory_file} has no k3s_servers")
    name, host_data = sorted(hosts)[0]
    merged = {**data, **host_data}
    access = SshAccess.from_data(merged, key=key_file)
    client = access.paramiko_client()
    try:
        client.connect(str(merged["ssh_hostname"]), username=access.user, timeout=10,
                       key_filename=str(access.key) if access.key else None)
        with client.open_sftp() as sftp, sftp.open(REMOTE_PATH) as handle:
            text = handle.read().decode()
    except paramiko.BadHostKeyException:
        raise UserError(f"{name} ({merged['ssh_hostname']}) presented a host key that is not the one pinned in "
                        f"{access.known_hosts}: refusing to connect (see docs/RUNBOOK.md, 'Host keys')") from None
    except (OSError, paramiko.SSHException) as exc:
        raise UserError(f"cannot fetch {REMOTE_PATH} from {name} ({merged['ssh_hostname']}): {exc}; "
                        "is k3s installed there (deploys/all.py)?") from None
    finally:
        client.close()
    return save(env, rewrite(text, env, endpoint(merged)))
