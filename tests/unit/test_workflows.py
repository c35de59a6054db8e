"""The GitHub Actions workflows (.github/workflows/): actionlint finds nothing; every step is an
invoke task or a README command; every invoke call names a task and options that tasks.py has,
for every env it runs for (a renamed task or option fails here); actions are pinned by commit;
permissions are least privilege; secrets reach steps only through ``env:``, never a command line.
Running the same calls against localcloud: tests/e2e/test_workflow_tasks.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import Collection, Parser
from invoke.exceptions import ParseError

import tasks
from tests.workflows import ROOT, WORKFLOWS, Step, envs_of, invoke_argv, load, resolve, steps

EXPRESSIONS = {"matrix.env": "", "inputs.env": "", "job.status": "success"}


def actionlint() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("actionlint is missing: .venv/bin/pip install -e '.[dev]'")
        pytest.skip("actionlint is missing: .venv/bin/pip install -e '.[dev]'")
    return found


def test_actionlint_finds_nothing() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 3
    done = subprocess.run([actionlint(), "-color=false", *files], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_would_say_so() -> None:
    """The check can fail: a job with an unknown key and an undefined matrix value."""
    broken = ("on: push\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steepz: []\n"
              "    steps:\n      - run: echo ${{ matrix.nope }}\n")
    done = subprocess.run([actionlint(), "-color=false", "-"], input=broken, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and "steepz" in done.stdout


def bad_invoke_calls(collection: Collection) -> list[str]:
    """Each workflow invoke call, for each env it runs for, parsed as invoke would parse it."""
    parser = Parser(contexts=collection.to_contexts())
    problems = []
    for step in steps():
        if invoke_argv(step.run) is None:
            continue
        for env in envs_of(step):
            words = invoke_argv(resolve(step.run, {**EXPRESSIONS, "matrix.env": env, "inputs.env": env})) or []
            try:
                parser.parse_argv(words)
            except ParseError as exc:
                problems.append(f"{step.workflow} {step.job} '{step.name}': invoke {' '.join(words)}: {exc}")
    return problems


def test_every_invoke_call_names_a_task_and_options_tasks_py_has() -> None:
    calls = [invoke_argv(s.run) for s in steps()]
    called = sorted({argv[0] for argv in calls if argv})
    assert called == ["ci.comment", "ci.credentials", "ci.notify", "ci.plan", "deploy", "images.pin", "lint"]
    assert bad_invoke_calls(tasks.ns) == []


def test_a_renamed_task_or_option_fails_the_check() -> None:
    renamed = Collection()
    for name, task in tasks.ns.tasks.items():
        renamed.add_task(task, "ship" if name == "deploy" else name)
    for name, sub in tasks.ns.collections.items():
        renamed.add_collection(sub, name)
    problems = bad_invoke_calls(renamed)
    assert problems and all("'deploy'" in p for p in problems)
    assert any(p.startswith("deploy-env.yml deploy 'Deploy (provision, configure, manifests)'") for p in problems)

    @tasks.task
    def plan(c: object, env: str = "dev") -> None:  # ci.plan without --out
        """stand-in"""

    ci = Collection("ci")
    for name, task in tasks.ns.collections["ci"].tasks.items():
        ci.add_task(plan if name == "plan" else task, name)
    fewer = Collection(*tasks.ns.tasks.values())
    fewer.add_collection(ci)
    fewer.add_collection(tasks.ns.collections["images"])
    assert any("No idea what '--out' is" in p for p in bad_invoke_calls(fewer))


def test_every_other_step_is_a_readme_command() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    others = [s for s in steps() if invoke_argv(s.run) is None]
    assert {s.run for s in others} == {
        "scripts/bootstrap.sh", "curl -fsSLo hcloud-openapi.json https://docs.hetzner.cloud/cloud.spec.json",
        'sudo env CI=true HCLOUD_OPENAPI="$PWD/hcloud-openapi.json" scripts/test.sh'}
    for command in ("scripts/bootstrap.sh", "scripts/test.sh",
                    "curl -fsSLo hcloud-openapi.json https://docs.hetzner.cloud/cloud.spec.json"):
        assert command in readme, f"the README does not give {command!r}"


def test_actions_are_pinned_by_commit() -> None:
    uses = [(path.name, step["uses"]) for path in WORKFLOWS.glob("*.yml")
            for job in load(path)["jobs"].values() for step in job.get("steps") or [] if "uses" in step]
    assert uses and [u for u in uses if not re.fullmatch(r"actions/[a-z-]+@[0-9a-f]{40}", u[1])] == []
    text = "\n".join(p.read_text() for p in WORKFLOWS.glob("*.yml"))
    for line in (ln for ln in text.splitlines() if "uses: actions/" in ln):
        assert re.search(r"@[0-9a-f]{40}  # v\d+\.\d+\.\d+$", line), f"no version comment: {line.strip()}"


def test_permissions_are_least_privilege() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        document = load(path)
        assert document["permissions"] == {"contents": "read"}, path.name
        for name, job in document["jobs"].items():
            granted = job.get("permissions", {})
            extra = {k: v for k, v in granted.items() if v != "read"}
            assert extra in ({}, {"pull-requests": "write"}), f"{path.name} {name}: {granted}"
            if extra:
                assert name == "comment", "only the comment job writes (its one comment)"


def test_secrets_reach_steps_through_env_only() -> None:
    for step in steps():
        assert "secrets." not in step.run, f"{step.workflow} '{step.name}' puts a secret on a command line"
        assert not re.search(r"\becho\b|\bprintenv\b|\bset -x\b|\benv\s*$", step.run), step.run
    used = {m for s in steps() for v in s.env.values() for m in re.findall(r"secrets\.(\w+)", v)}
    assert used == {"HCLOUD_TOKEN", "SSH_PUBLIC_KEY", "SSH_PRIVATE_KEY", "SOPS_AGE_KEY", "KUBECONFIG",
                    "NORNOS_REPO_TOKEN", "SLACK_WEBHOOK_URL", "GITHUB_TOKEN"}


def test_deploys_run_in_order_one_at_a_time_with_production_gated() -> None:
    deploy = load(WORKFLOWS / "deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    assert [jobs[j].get("needs") for j in ("dev", "staging", "production")] == [None, "dev", "staging"]
    assert {jobs[j]["with"]["env"] for j in jobs} == {"dev", "staging", "production"}
    job = load(WORKFLOWS / "deploy-env.yml")["jobs"]["deploy"]
    # the GitHub environment of the same name: its secrets, and production's required reviewers
    assert job["environment"] == "${{ inputs.env }}"
    assert job["concurrency"] == {"group": "deploy-${{ inputs.env }}", "cancel-in-progress": False}
    names = [s.get("name") for s in job["steps"]]
    assert names.index("Pin images to the application's release") < names.index(
        "Deploy (provision, configure, manifests)") < names.index("Slack")
    assert job["steps"][-1]["if"] == "always()"


def test_pull_requests_never_apply() -> None:
    pr = [s for s in steps() if s.workflow == "pull-request.yml"]
    applying = [s.run for s in pr if (argv := invoke_argv(s.run)) and argv[0] in {"deploy", "provision", "configure",
                                                                                  "manifests", "destroy", "images.pin"}]
    assert applying == []
    plan = load(WORKFLOWS / "pull-request.yml")["jobs"]["plan"]
    assert plan["environment"] == "${{ matrix.env }}-plan" and plan["strategy"]["matrix"]["env"] == [
        "dev", "staging", "production"]


def test_step_type_is_what_the_reader_uses() -> None:
    assert all(isinstance(s, Step) and s.run for s in steps())
