"""checkov policy scan of rendered manifests, offline (--skip-download), with documented skips.

checkov cannot share the project venv (it pins packaging<24, pytest 9 needs >=24), so it lives in
its own venv under .venv/tools/checkov; ensure_checkov() makes it on first use. Every skip is
listed here with its reason, and docs/MANIFESTS.md repeats them for reviewers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nornos_infra import paths
from nornos_infra.errors import UserError
from nornos_infra.kube.model import Obj

CHECKOV_VERSION = "3.3.30"
CHECKOV_VENV = paths.project_dir() / ".venv" / "tools" / "checkov"

SKIPS: dict[str, str] = {
    "CKV_K8S_43": "images are pinned by tag per overlay in git; `invoke images.pin` (run by every CI deploy) "
                  "adds each release's digest, and a render whose images all carry one is scanned without this skip",
}


def images_of(obj: Obj) -> list[str]:
    spec = obj.get("spec") or {}
    template = ((spec.get("jobTemplate") or {}).get("spec") or spec).get("template") or {}
    pod = template.get("spec") or {}
    return [str(c.get("image", "")) for c in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]]


def skips_for(objs: list[Obj]) -> dict[str, str]:
    """SKIPS, less the digest check once every image of the render carries a digest (pinned)."""
    pinned = all("@sha256:" in image for obj in objs for image in images_of(obj))
    return {k: v for k, v in SKIPS.items() if not (k == "CKV_K8S_43" and pinned)}


@dataclass(frozen=True)
class Finding:
    check_id: str
    name: str
    resource: str


def checkov_binary() -> Path:
    override = os.environ.get("NORNOS_CHECKOV")
    return Path(override) if override else CHECKOV_VENV / "bin" / "checkov"


def ensure_checkov(timeout: float = 900) -> Path:
    """The checkov executable, installing the pinned version into its own venv when missing."""
    binary = checkov_binary()
    if binary.exists():
        return binary
    if os.environ.get("NORNOS_CHECKOV"):
        raise UserError(f"NORNOS_CHECKOV={binary} does not exist")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True, capture_output=True,
                       text=True, timeout=timeout)
        subprocess.run([str(CHECKOV_VENV / "bin" / "pip"), "install", "-q", f"checkov=={CHECKOV_VERSION}"],
                       check=True, capture_output=True, text=True, timeout=timeout)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise UserError(f"cannot install checkov {CHECKOV_VERSION} into {CHECKOV_VENV}: "
                        f"{' '.join(str(detail).split())[-300:]}") from None
    return binary


def scan(objs: list[Obj], skips: dict[str, str] | None = None, timeout: float = 600) -> list[Finding]:
    """Failed checks (after skips) for the rendered objects; checkov never goes online (--skip-download)."""
    skips = SKIPS if skips is None else skips
    binary = ensure_checkov()
    with tempfile.TemporaryDirectory(prefix="nornos-checkov-") as tmp:
        (Path(tmp) / "rendered.yaml").write_text(yaml.safe_dump_all(objs, sort_keys=False))
        cmd = [str(binary), "--framework", "kubernetes", "--skip-download", "--quiet", "--compact",
               "-o", "json", "-d", tmp]
        if skips:
            cmd += ["--skip-check", ",".join(sorted(skips))]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode not in (0, 1):
        raise UserError(f"checkov failed (exit {done.returncode}): {' '.join(done.stderr.split())[-400:]}")
    data: Any = json.loads(done.stdout or "[]")
    reports = data if isinstance(data, list) else [data]
    out = []
    for report in reports:
        for failed in (report.get("results") or {}).get("failed_checks") or []:
            out.append(Finding(failed["check_id"], failed.get("check_name", ""), failed.get("resource", "")))
    return out
