"""The GitHub Actions workflows as the tests read them: every ``run:`` step with the environment
GitHub would give it, and the invoke calls among them with the expressions filled in for one
env. Used by tests/unit/test_workflows.py (each call parses against tasks.py) and
tests/e2e/test_workflow_tasks.py (each call runs against localcloud)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


@dataclass(frozen=True)
class Step:
    workflow: str  # file name
    job: str
    name: str
    run: str
    env: dict[str, str] = field(default_factory=dict)  # workflow, job and step env merged, unresolved


def load(path: Path) -> dict[str, Any]:
    # PyYAML reads a bare `on:` as True: the key GitHub calls "on"
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps() -> list[Step]:
    found = []
    for path in sorted(WORKFLOWS.glob("*.yml")):
        document = load(path)
        for job_name, job in (document.get("jobs") or {}).items():
            for step in job.get("steps") or []:
                if "run" in step:
                    env = {**(document.get("env") or {}), **(job.get("env") or {}), **(step.get("env") or {})}
                    found.append(Step(path.name, job_name, str(step.get("name", "")), str(step["run"]).strip(),
                                      {k: str(v) for k, v in env.items()}))
    return found


def resolve(text: str, values: dict[str, str]) -> str:
    """Fill in ``${{ name }}`` from ``values``; an expression it does not know is an error (KeyError)."""
    return EXPRESSION.sub(lambda m: values[m.group(1)], text)


def invoke_argv(run: str) -> list[str] | None:
    """``.venv/bin/invoke a --b c`` -> ``["a", "--b", "c"]``; None for a step that is not an invoke call."""
    words = shlex.split(run)
    if words and Path(words[0]).name == "invoke":
        return words[1:]
    return None


def envs_of(step: Step) -> list[str]:
    """The environments a step runs for: its job's matrix, or the callers' ``with: env:``."""
    document = load(WORKFLOWS / step.workflow)
    job = document["jobs"][step.job]
    matrix = ((job.get("strategy") or {}).get("matrix") or {}).get("env")
    if matrix:
        return list(matrix)
    callers = [j["with"]["env"] for path in WORKFLOWS.glob("*.yml") for j in (load(path).get("jobs") or {}).values()
               if j.get("uses") == f"./.github/workflows/{step.workflow}"]
    return callers or ["dev"]
