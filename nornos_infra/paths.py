"""Where things are, in one place.

The library's own files (the templates the host roles render) live inside the package, so it
works installed as a wheel. The project's files (environments/, inventories/, secrets/,
manifests/, .kube/) belong to the project directory: $NORNOS_PROJECT_DIR when set, else the
checkout this library runs from (an editable install, the usual case), else the current
directory (a wheel installed elsewhere, run from the project, as pyinfra is).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE / "templates"


def project_dir() -> Path:
    configured = os.environ.get("NORNOS_PROJECT_DIR")
    if configured:
        return Path(configured).resolve()
    checkout = PACKAGE.parent
    if (checkout / "environments").is_dir() and (checkout / "deploys").is_dir():
        return checkout
    return Path.cwd()


def environments_dir() -> Path:
    return project_dir() / "environments"


def inventories_dir() -> Path:
    return project_dir() / "inventories"


def inventory_file(env: str) -> Path:
    """inventories/<env>.py, which provision.py writes and everything after it reads."""
    return inventories_dir() / f"{env}.py"


def secrets_dir() -> Path:
    return project_dir() / "secrets"


def manifests_dir() -> Path:
    return project_dir() / "manifests"


def kube_dir() -> Path:
    return project_dir() / ".kube"
