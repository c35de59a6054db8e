"""Issue 10, findings 7 and 8: an environment is a NAME. ``provision.py ../x`` read ``./x.yaml``,
``invoke secrets.init --env ../../d/escaped`` wrote outside ``secrets/`` and ``--env nodir/x``
ended in a traceback. Every entry point refuses a name that is a path, in one line, before any
file is read or written (provision.py itself: tests/api/test_bad_inputs.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nornos_infra import secrets
from nornos_infra.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
BAD = ["../../d/escaped", "nodir/x", "../x", "/etc/passwd", "x" * 300, "dev\n", "Dev", "", "dev; touch pwned",
       "-rf", "dev.yaml"]


@pytest.mark.parametrize("env", BAD)
def test_secrets_paths_refuse_names_that_are_paths(env: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is not an environment name"):
        secrets.path_for(env, tmp_path / "secrets")
    with pytest.raises(UserError, match="is not an environment name"):
        secrets.init(env, directory=tmp_path / "secrets", identity=tmp_path / "age.txt")
    with pytest.raises(UserError, match="is not an environment name"):
        secrets.load(env, directory=tmp_path / "secrets")
    assert sorted(p.name for p in tmp_path.rglob("*")) == [], "nothing made anywhere"


@pytest.mark.parametrize(("task", "env"), [("secrets.init", "../../d/escaped"), ("secrets.init", "nodir/x"),
                                           ("secrets.names", "../x"), ("secrets.edit", "../x"),
                                           ("kubeconfig", "../../etc/x"), ("check", "a/b"),
                                           ("configure", "../x"), ("plan", "dev; touch pwned")])
def test_invoke_tasks_refuse_them_in_one_line(task: str, env: str, tmp_path: Path) -> None:
    env_vars = {**os.environ, "NORNOS_SECRETS_DIR": str(tmp_path / "secrets"),
                "SOPS_AGE_KEY_FILE": str(tmp_path / "age.txt"), "HCLOUD_TOKEN": "x",
                "HCLOUD_ENDPOINT": "http://127.0.0.1:1/v1"}  # never starts localcloud
    result = subprocess.run([str(Path(sys.executable).parent / "invoke"), "-r", str(ROOT), task, "--env", env],
                            cwd=tmp_path,
                            env=env_vars, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "is not an environment name" in lines[0], result.stderr
    assert not (tmp_path / "pwned").exists() and not (ROOT / "pwned").exists()
    assert list(tmp_path.rglob("*")) == [], "nothing made anywhere"
