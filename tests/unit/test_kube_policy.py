"""The checkov step (nornos_infra/kube/policy.py) around a stand-in checkov: the command it runs
(offline, the rendered objects, the skips), how it reads checkov's JSON (one report or a list), and
what a person reads when checkov fails, is missing, or cannot be installed. test_manifests.py runs
the real checkov over the real manifests."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from nornos_infra.errors import UserError
from nornos_infra.kube import policy

OBJS = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "nornos"}}]


def fake_checkov(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: object, code: int = 1,
                 stderr: str = "") -> Path:
    """A checkov that records its arguments and the YAML it was given, and prints ``output``."""
    record = tmp_path / "record"
    record.mkdir()
    (tmp_path / "out.json").write_text(output if isinstance(output, str) else json.dumps(output))
    script = tmp_path / "checkov"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {shlex.quote(str(record / "args"))}\n'
        'while [ "$1" != "-d" ]; do shift; done\n'
        f'cat "$2"/*.yaml > {shlex.quote(str(record / "input.yaml"))}\n'
        f"cat {shlex.quote(str(tmp_path / 'out.json'))}\n"
        f"printf %s {shlex.quote(stderr)} >&2\n"
        f"exit {code}\n")
    script.chmod(0o755)
    monkeypatch.setenv("NORNOS_CHECKOV", str(script))
    return record


FAILED = {"check_type": "kubernetes", "results": {"failed_checks": [
    {"check_id": "CKV_K8S_43", "check_name": "Image should use digest", "resource": "Deployment.nornos.web"},
    {"check_id": "CKV_K8S_8", "resource": "Deployment.nornos.api"}]}}


def test_scan_runs_checkov_offline_on_the_rendered_objects_with_the_skips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = fake_checkov(tmp_path, monkeypatch, FAILED)
    findings = policy.scan(OBJS, skips={"CKV_K8S_9": "x", "CKV_K8S_21": "y"})
    args = (record / "args").read_text().splitlines()
    assert args[:8] == ["--framework", "kubernetes", "--skip-download", "--quiet", "--compact", "-o", "json", "-d"]
    assert args[9:] == ["--skip-check", "CKV_K8S_21,CKV_K8S_9"]
    assert list(yaml.safe_load_all((record / "input.yaml").read_text())) == OBJS
    assert findings == [policy.Finding("CKV_K8S_43", "Image should use digest", "Deployment.nornos.web"),
                        policy.Finding("CKV_K8S_8", "", "Deployment.nornos.api")]


def test_the_documented_skips_apply_unless_told_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = fake_checkov(tmp_path, monkeypatch, [FAILED, {"results": {}}], code=0)
    assert [f.check_id for f in policy.scan(OBJS)] == ["CKV_K8S_43", "CKV_K8S_8"]  # a list of reports
    assert (record / "args").read_text().splitlines()[9:] == ["--skip-check", ",".join(sorted(policy.SKIPS))]
    policy.scan(OBJS, skips={})
    assert "--skip-check" not in (record / "args").read_text().splitlines()


def test_no_output_is_no_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_checkov(tmp_path, monkeypatch, "", code=0)
    assert policy.scan(OBJS) == []


def test_checkov_failing_is_one_line_with_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_checkov(tmp_path, monkeypatch, "", code=2, stderr="Traceback:\n  boom\nValueError: " + "x" * 500)
    with pytest.raises(UserError) as err:
        policy.scan(OBJS)
    message = str(err.value)
    assert message.startswith("checkov failed (exit 2): ")
    said = " ".join(("Traceback: boom ValueError: " + "x" * 500).split())
    assert message == "checkov failed (exit 2): " + said[-400:]  # the end of what it said, on one line


def test_a_checkov_named_by_the_environment_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORNOS_CHECKOV", str(tmp_path / "nope"))
    assert policy.checkov_binary() == tmp_path / "nope"
    with pytest.raises(UserError) as err:
        policy.ensure_checkov()
    assert str(err.value) == f"NORNOS_CHECKOV={tmp_path / 'nope'} does not exist"


def test_the_default_checkov_is_its_own_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NORNOS_CHECKOV", raising=False)
    assert policy.checkov_binary() == policy.CHECKOV_VENV / "bin" / "checkov"


def test_an_install_that_cannot_happen_says_where_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NORNOS_CHECKOV", raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(policy, "CHECKOV_VENV", blocker / "checkov")  # a venv cannot be made under a file
    with pytest.raises(UserError) as err:
        policy.ensure_checkov(timeout=60)
    # venv's own words, as text (they once came out as b"...\n", the bytes' repr)
    assert str(err.value) == (f"cannot install checkov {policy.CHECKOV_VERSION} into {blocker / 'checkov'}: "
                              f"Error: [Errno 20] Not a directory: '{blocker / 'checkov'}'")
