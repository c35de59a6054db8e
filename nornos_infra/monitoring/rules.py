"""The alert rules of the manifests as Prometheus itself reads them: the ``spec`` of every
PrometheusRule in a file, as a rule file (``groups:``). For ``promtool check rules`` and ``promtool
test rules``, and for a Prometheus that runs outside Kubernetes (the e2e tests on localcloud)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nornos_infra.paths import manifests_dir

RULES_FILE = "addons/monitoring-rules.yaml"


def rule_groups(path: Path | None = None) -> list[dict[str, Any]]:
    """The rule groups of every PrometheusRule in ``path`` (default: the manifests' rules file)."""
    source = path or manifests_dir() / RULES_FILE
    groups: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(source.read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
            groups += doc["spec"]["groups"]
    return groups


def write_rule_file(dest: Path, path: Path | None = None) -> Path:
    dest.write_text(yaml.safe_dump({"groups": rule_groups(path)}, sort_keys=False))
    return dest
