"""What the workflows do beyond the commands people type (nornos_infra/ci/), against a stand-in
for GitHub, its container registry and Slack (tests/unit/fake_github.py; none can be reached
from here): images pinned to a release's digests and rendered by the real kustomize, the one
plan comment created then updated, the Slack message, the credentials written 0600 and never
printed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from nornos_infra.ci import credentials, images, report, slack
from nornos_infra.errors import UserError
from nornos_infra.kube import policy, render
from tests.unit.fake_github import TOKEN, WEBHOOK_PATH, FakeGitHub, digest_of

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("auth-service", "patient-app", "doctor-app", "shared-data-server", "relay-server", "agent-service")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.state.releases["nornos/platform"] = ["v0.9.1", "v0.9.0"]
        fake.state.images = {f"nornos/{s}": {"0.9.1", "0.9.0"} for s in SERVICES}
        yield fake


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with its own copy of manifests/ (pinning writes the overlays)."""
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    monkeypatch.setenv("NORNOS_PROJECT_DIR", str(tmp_path))
    return tmp_path


def registry_env(github: FakeGitHub) -> dict[str, str]:
    return {"NORNOS_REPO_TOKEN": TOKEN, "NORNOS_APP_REPO": "nornos/platform",
            "NORNOS_GITHUB_API": github.url, "NORNOS_REGISTRY_URL": github.url}


# --- images.pin ------------------------------------------------------------------------------------------

def test_pin_writes_tag_and_digest_of_the_latest_release_and_kustomize_renders_both(
        github: FakeGitHub, project: Path) -> None:
    overlay = project / "manifests" / "overlays" / "staging" / "kustomization.yaml"
    before = overlay.read_text()
    pins = images.pin("staging", environ=registry_env(github))
    assert [(p.image, p.tag, p.digest) for p in pins] == [
        (f"ghcr.io/nornos/{s}", "0.9.1", digest_of(f"nornos/{s}", "0.9.1")) for s in SERVICES]
    after = overlay.read_text()
    # only the images block changed: every other line, comments included, as it was
    assert [ln for ln in after.splitlines() if "newTag" not in ln and "digest" not in ln] == \
           [ln for ln in before.splitlines() if "newTag" not in ln]
    rendered = render.render("staging", project / "manifests")
    refs = sorted({image for o in rendered for image in policy.images_of(o) if "ghcr.io/nornos/" in image})
    assert refs == sorted(f"ghcr.io/nornos/{s}:0.9.1@{digest_of(f'nornos/{s}', '0.9.1')}" for s in SERVICES)
    assert images.pin("staging", environ=registry_env(github)) == pins and overlay.read_text() == after, "idempotent"
    # the token went to GitHub as a bearer token and to the registry only as the Basic password for a pull token
    sent = [r for r in github.state.requests if r.path.startswith("/v2/")]
    assert sent and all(r.method == "HEAD" and TOKEN not in json.dumps(r.headers) for r in sent)


def test_pin_a_named_release(github: FakeGitHub, project: Path) -> None:
    pins = images.pin("dev", "v0.9.0", environ=registry_env(github))
    assert {p.tag for p in pins} == {"0.9.0"}


def test_a_pinned_overlay_passes_checkov_image_digest_check_without_its_skip(github: FakeGitHub, project: Path) -> None:
    """CKV_K8S_43 (image should use a digest): skipped while an overlay pins images by tag alone,
    run (and passed) once every image carries a digest."""
    unpinned = render.render("production", project / "manifests")
    assert "CKV_K8S_43" in policy.skips_for(unpinned)
    images.pin("production", environ=registry_env(github))
    pinned = render.render("production", project / "manifests")
    assert "CKV_K8S_43" not in policy.skips_for(pinned)
    assert [f for f in policy.scan(pinned, skips=policy.skips_for(pinned)) if f.check_id == "CKV_K8S_43"] == []


@pytest.mark.parametrize(("change", "message"), [
    ({"NORNOS_REPO_TOKEN": ""}, "NORNOS_REPO_TOKEN is not set: it reads the application repository's releases"),
    ({"NORNOS_APP_REPO": "platform"}, "NORNOS_APP_REPO 'platform' is not owner/name (the application repository)"),
    ({"NORNOS_REPO_TOKEN": "wrong"}, "the release of nornos/platform: refused (401); NORNOS_REPO_TOKEN needs read "
                                     "access to the application repository's contents and packages"),
    ({"NORNOS_APP_REPO": "nornos/other"}, "nornos/other has no release (latest), or NORNOS_REPO_TOKEN cannot read it"),
])
def test_pin_refusals_are_one_line_and_write_nothing(github: FakeGitHub, project: Path, change: dict[str, str],
                                                     message: str) -> None:
    overlay = project / "manifests" / "overlays" / "dev" / "kustomization.yaml"
    before = overlay.read_text()
    with pytest.raises(UserError) as refused:
        images.pin("dev", environ={**registry_env(github), **change})
    assert str(refused.value) == message
    assert overlay.read_text() == before


def test_an_image_missing_from_the_release_writes_nothing(github: FakeGitHub, project: Path) -> None:
    github.state.images["nornos/relay-server"].discard("0.9.1")
    overlay = project / "manifests" / "overlays" / "dev" / "kustomization.yaml"
    before = overlay.read_text()
    with pytest.raises(UserError, match=r"^ghcr\.io/nornos/relay-server:0\.9\.1 is not in the registry: was the "
                                        r"release published\?$"):
        images.pin("dev", environ=registry_env(github))
    assert overlay.read_text() == before


# --- the plan comment --------------------------------------------------------------------------------------

PLAN = {"env": "dev", "exit_status": 2, "pending": ["hosts"], "layers": {
    "cloud": {"state": "no changes", "summary": "no changes (19 unchanged)", "command": "provision.py dev --dry-run",
              "body": "", "data": {"plan": {"changes": [], "cost": {"before": "58.29", "after": "58.29"}}}},
    "hosts": {"state": "changes pending", "summary": "1 operation(s) would change on 1 host(s): redis-1",
              "command": "pyinfra --dry --diff", "body": "",
              "data": {"operations": [{"name": "Redis | Redis settings", "hosts": ["redis-1"]}],
                       "diff": "    [redis-1] Will modify /etc/redis/redis.conf\n      - # changed by hand"}},
    "manifests": {"state": "not run", "summary": "not run: no cluster", "command": "invoke manifests", "body": "",
                  "data": {}}}}


def event(tmp_path: Path, number: int = 7) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"pull_request": {"number": number}}))
    return path


def test_the_plan_comment_is_made_once_then_updated_in_place(github: FakeGitHub, tmp_path: Path) -> None:
    environ = {"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "nornos/infra", "GITHUB_API_URL": github.url,
               "GITHUB_EVENT_PATH": str(event(tmp_path))}
    github.state.comments[5] = {"id": 5, "issue": 7, "body": "a reviewer's comment", "html_url": "x"}
    first = report.upsert_comment(report.comment_body([PLAN], "0123456789abcdef"), environ)
    second = report.upsert_comment(report.comment_body([{**PLAN, "exit_status": 0}]), environ)
    ours = [c for c in github.state.comments.values() if report.MARKER in c["body"]]
    assert len(ours) == 1 and first == second == ours[0]["html_url"]
    assert "### Plan for `dev`: no changes" in ours[0]["body"]
    assert github.state.comments[5]["body"] == "a reviewer's comment"
    assert [r.method for r in github.state.requests] == ["GET", "POST", "GET", "PATCH"]


def test_the_markdown_names_each_layer_and_folds_its_output() -> None:
    text = report.markdown(PLAN)
    assert text.startswith("### Plan for `dev`: changes pending\n\n| layer | state | summary |\n|---|---|---|\n")
    assert "| hosts | 🟡 changes pending | 1 operation(s) would change on 1 host(s): redis-1 |" in text
    assert "| manifests | ⚪ not run | not run: no cluster |" in text
    assert "<details><summary>hosts: pyinfra --dry --diff</summary>" in text
    assert "~ Redis | Redis settings: redis-1" in text and "monthly cost: EUR 58.29 -> EUR 58.29" in text


def test_plans_are_saved_and_loaded_in_env_order(tmp_path: Path) -> None:
    for env in ("production", "dev", "staging"):
        report.save({**PLAN, "env": env}, tmp_path / f"plan-{env}")
    assert [p["env"] for p in report.load_all(tmp_path)] == ["dev", "staging", "production"]
    assert (tmp_path / "plan-dev" / "plan-dev.md").read_text() == report.markdown(PLAN)
    with pytest.raises(UserError, match=r"no plan-<env>\.json under"):
        report.load_all(tmp_path / "nothing")


def test_the_job_summary_gets_the_plan(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    assert report.add_to_job_summary("x", {}) is None
    assert report.add_to_job_summary("one", {"GITHUB_STEP_SUMMARY": str(summary)}) == summary
    report.add_to_job_summary("two", {"GITHUB_STEP_SUMMARY": str(summary)})
    assert summary.read_text() == "one\ntwo\n"


# --- Slack -------------------------------------------------------------------------------------------------

def test_slack_hears_of_success_and_failure(github: FakeGitHub) -> None:
    environ = {"SLACK_WEBHOOK_URL": github.url + WEBHOOK_PATH, "GITHUB_SHA": "abcdef0123456789",
               "GITHUB_REPOSITORY": "nornos/infra", "GITHUB_RUN_ID": "42", "GITHUB_SERVER_URL": "https://github.com"}
    done = slack.notify("staging", "failure", environ)
    assert github.state.slack == [{"text": ":x: deploy failed: *staging* at `abcdef012345` "
                                           "(<https://github.com/nornos/infra/actions/runs/42|run 42>)"}]
    assert done == f"Slack: {github.state.slack[0]['text']}" and "fake-webhook-secret" not in done
    slack.notify("staging", "success", environ)
    assert github.state.slack[1]["text"].startswith(":white_check_mark: deployed: *staging*")
    assert slack.notify("dev", "success", {}) == "SLACK_WEBHOOK_URL is not set: no Slack message sent"
    with pytest.raises(UserError, match=r"^--status 'ok': use one of success, failure, cancelled"):
        slack.notify("dev", "ok", environ)


# --- credentials -------------------------------------------------------------------------------------------

AGE = "# created: 2026-12-02\n# public key: age1abc\nAGE-SECRET-KEY-1" + "Q" * 58 + "\n"
SSH = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
KUBE = {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": []}


def test_credentials_are_written_0600_where_the_deploy_looks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORNOS_KUBECONFIG_DIR", str(tmp_path / "kube"))
    environ = {"SOPS_AGE_KEY": AGE, "SSH_PRIVATE_KEY": SSH, "SOPS_AGE_KEY_FILE": str(tmp_path / "age" / "keys.txt"),
               "KUBECONFIG_B64": base64.b64encode(yaml.safe_dump(KUBE).encode()).decode()}
    written = credentials.write_all("dev", environ, home=tmp_path / "home")
    paths = [w.path for w in written]
    assert paths == [tmp_path / "age" / "keys.txt", tmp_path / "home" / ".ssh" / "id_ed25519",
                     tmp_path / "kube" / "nornos-dev.yaml"]
    for path in paths:
        assert path is not None and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "home" / ".ssh" / "id_ed25519").read_text() == SSH + "\n"
    assert "AGE-SECRET-KEY-1" in (tmp_path / "age" / "keys.txt").read_text()
    assert yaml.safe_load((tmp_path / "kube" / "nornos-dev.yaml").read_text()) == KUBE
    assert [w.line() for w in written][1] == f"SSH_PRIVATE_KEY: written to {paths[1]} (mode 0600)"


def test_credentials_not_set_are_said_and_bad_ones_refused_before_any_write(tmp_path: Path) -> None:
    written = credentials.write_all("dev", {}, home=tmp_path)
    assert [w.line() for w in written] == ["SOPS_AGE_KEY: not set, nothing written",
                                           "SSH_PRIVATE_KEY: not set, nothing written",
                                           "KUBECONFIG_B64: not set, nothing written"]
    for environ, message in (
            ({"SSH_PRIVATE_KEY": "ssh-ed25519 AAAA public"}, "SSH_PRIVATE_KEY is not a private key"),
            ({"SOPS_AGE_KEY": "age1publickey"}, "SOPS_AGE_KEY holds no age identity"),
            ({"KUBECONFIG_B64": "not base64!"}, "KUBECONFIG_B64 is not a base64-encoded kubeconfig"),
            ({"KUBECONFIG_B64": base64.b64encode(b"kind: Pod").decode()}, "decodes to something that is not")):
        with pytest.raises(UserError, match=message):
            credentials.write_all("dev", {"SOPS_AGE_KEY": AGE, **environ,
                                          "SOPS_AGE_KEY_FILE": str(tmp_path / "age.txt")}, home=tmp_path)
        assert not (tmp_path / "age.txt").exists() and not (tmp_path / ".ssh").exists()


def test_invoke_ci_credentials_never_prints_a_secret(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "SOPS_AGE_KEY": AGE, "SSH_PRIVATE_KEY": SSH,
           "SOPS_AGE_KEY_FILE": str(tmp_path / "keys.txt"), "NORNOS_KUBECONFIG_DIR": str(tmp_path / "kube")}
    env.pop("KUBECONFIG_B64", None)
    done = subprocess.run([str(Path(sys.executable).with_name("invoke")), "ci.credentials", "--env", "dev"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"SOPS_AGE_KEY: written to {tmp_path / 'keys.txt'} (mode 0600)",
                                        f"SSH_PRIVATE_KEY: written to {tmp_path / '.ssh' / 'id_ed25519'} (mode 0600)",
                                        "KUBECONFIG_B64: not set, nothing written"]
    assert "AGE-SECRET-KEY" not in done.stdout + done.stderr and "b3BlbnNz" not in done.stdout + done.stderr


def test_invoke_images_pin_and_ci_notify_through_invoke(github: FakeGitHub, project: Path) -> None:
    env = {**os.environ, **registry_env(github), "NORNOS_PROJECT_DIR": str(project),
           "SLACK_WEBHOOK_URL": github.url + WEBHOOK_PATH}
    invoke = str(Path(sys.executable).with_name("invoke"))
    done = subprocess.run([invoke, "images.pin", "--env", "dev", "--release", "v0.9.0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (f"{project / 'manifests' / 'overlays' / 'dev' / 'kustomization.yaml'}: "
                                            "6 image(s) pinned to release 0.9.0")
    refused = subprocess.run([invoke, "images.pin", "--env", "dev"], cwd=ROOT, capture_output=True, text=True,
                             env={**env, "NORNOS_REPO_TOKEN": ""}, timeout=120)
    assert (refused.returncode, refused.stderr.strip()) == (
        1, "images.pin: NORNOS_REPO_TOKEN is not set: it reads the application repository's releases")
    sent = subprocess.run([invoke, "ci.notify", "--env", "dev", "--status", "success"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0 and github.state.slack == [{"text": ":white_check_mark: deployed: *dev*"}]
    assert "fake-webhook-secret" not in sent.stdout + sent.stderr
