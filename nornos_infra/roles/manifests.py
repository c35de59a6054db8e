"""The final step: fetch the kubeconfig from the first k3s server, then render, validate and
server-side apply the manifests with prune and rollout waits (nornos_infra/kube).

It runs once, for the first k3s server, on the machine running pyinfra. Where k3s was
skipped (no internet access, no binary) there is no cluster: it says so once and stops.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pyinfra import logger
from pyinfra.api.exceptions import OperationError
from pyinfra.context import host
from pyinfra.operations import python

from nornos_infra import kubeconfig
from nornos_infra.kube.environment import apply_environment
from nornos_infra.roles import context
from nornos_infra.roles.k3s import binary_source, first_server


def _apply() -> None:
    shared = context.current()
    env = shared.env
    with tempfile.TemporaryDirectory(prefix="nornos-kubeconfig-") as tmp:
        raw = Path(tmp) / "k3s.yaml"
        if not host.get_file(kubeconfig.REMOTE_PATH, str(raw)):
            raise OperationError(f"could not fetch {kubeconfig.REMOTE_PATH} from {host.name}")
        text = kubeconfig.rewrite(raw.read_text(), env, kubeconfig.endpoint(host.data))
    path = kubeconfig.save(env, text)
    report = apply_environment(env, path, dict(shared.secrets), shared.endpoints, dry_run=False)
    for line in report.lines():
        logger.info(line)
    if not report.ok:
        raise OperationError("applying the manifests failed; see the report above")


@context.role("Manifests")
def manifests() -> None:
    if "k3s_servers" not in host.groups or host.name != first_server():
        return
    if binary_source() is None:
        logger.warning("manifests skipped: no cluster (k3s skipped: no binary, and the hosts have no internet access)")
        return
    python.call(name="Apply the Kubernetes manifests (server-side apply, prune, rollouts)", function=_apply)
