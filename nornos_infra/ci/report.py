"""A plan where reviewers read it: ``invoke ci.plan --env E`` writes the plan of one env (JSON
and Markdown) and adds it to the job summary; ``invoke ci.comment`` puts the plans of every env
into one pull request comment, updated in place on each push (found by a marker line), so a
pull request never collects a comment per run.

Secrets never reach either: the plan masks every secret value of the env before it is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from nornos_infra.cloud.model import Op
from nornos_infra.errors import UserError

MARKER = "<!-- nornos-plan -->"
STATE_ICON = {"changes pending": "🟡", "no changes": "🟢", "not run": "⚪", "failed": "🔴"}
MAX_DETAIL = 20_000  # characters of one layer's output; GitHub caps a comment at 65,536


def markdown(plan: Mapping[str, Any]) -> str:
    """One env's plan (``invoke plan --json``) as Markdown: a table of the layers, then each
    layer's output folded."""
    layers: Mapping[str, Mapping[str, Any]] = plan["layers"]
    status = {0: "no changes", 1: "a layer failed", 2: "changes pending"}.get(int(plan["exit_status"]), "?")
    lines = [f"### Plan for `{plan['env']}`: {status}", "", "| layer | state | summary |", "|---|---|---|"]
    for name, layer in layers.items():
        summary = str(layer["summary"]).replace("|", "\\|")
        lines.append(f"| {name} | {STATE_ICON.get(layer['state'], '')} {layer['state']} | {summary} |")
    for name, layer in layers.items():
        detail = _detail(name, layer)
        if detail:
            if len(detail) > MAX_DETAIL:
                detail = detail[:MAX_DETAIL] + "\n... (cut; the job log has the whole plan)"
            lines += ["", f"<details><summary>{name}: {layer['command']}</summary>", "", "```diff", detail.rstrip(),
                      "```", "</details>"]
    return "\n".join(lines) + "\n"


def _detail(name: str, layer: Mapping[str, Any]) -> str:
    data = layer.get("data") or {}
    if name == "cloud" and data.get("plan"):
        cloud = data["plan"]
        rows = [f"{Op(c['op']).symbol} {c['kind']} {c['name']}: {'; '.join(c['reasons']) or 'unchanged'}"
                for c in cloud["changes"] if c["op"] != Op.NOOP.value]
        cost = cloud.get("cost") or {}
        if cost.get("after") is not None:
            rows.append(f"monthly cost: EUR {cost.get('before')} -> EUR {cost['after']} (net, excl. VAT)")
        return "\n".join(rows)
    if name == "hosts" and data:
        ops = [f"~ {op['name']}: {', '.join(op['hosts'])}" for op in data.get("operations", [])]
        return "\n".join([*ops, str(data.get("diff") or "")]).strip()
    if name == "manifests" and data:
        return str(data.get("diff") or "")
    return str(layer.get("body") or "")


ENV_ORDER = {"dev": 0, "staging": 1, "production": 2}


def save(plan: Mapping[str, Any], directory: Path) -> tuple[Path, str]:
    """``plan-<env>.json`` and ``plan-<env>.md`` in ``directory`` (what the comment job collects)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"plan-{plan['env']}.json"
    target.write_text(json.dumps(plan, indent=2) + "\n")
    text = markdown(plan)
    target.with_suffix(".md").write_text(text)
    return target, text


def load_all(directory: Path) -> list[dict[str, Any]]:
    """Every ``plan-<env>.json`` under ``directory``, dev, staging, production first."""
    files = sorted(directory.glob("**/plan-*.json"))
    if not files:
        raise UserError(f"no plan-<env>.json under {directory}/; run `invoke ci.plan` first")
    plans = [json.loads(f.read_text()) for f in files]
    return sorted(plans, key=lambda plan: (ENV_ORDER.get(plan["env"], len(ENV_ORDER)), plan["env"]))


def add_to_job_summary(text: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Append to $GITHUB_STEP_SUMMARY (the job's summary page); None outside GitHub Actions."""
    target = (os.environ if environ is None else environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as out:
        out.write(text + "\n")
    return Path(target)


def comment_body(plans: Sequence[Mapping[str, Any]], sha: str = "") -> str:
    head = f"{MARKER}\n## Plan{f' for {sha[:12]}' if sha else ''}\n"
    return head + "\n".join(markdown(plan) for plan in plans)


def upsert_comment(body: str, environ: Mapping[str, str] | None = None, session: requests.Session | None = None) -> str:
    """Create the pull request's plan comment, or update the one that carries MARKER; return its URL.

    Reads GitHub's own job variables: GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL and the
    pull request number from the event (GITHUB_EVENT_PATH)."""
    environ = os.environ if environ is None else environ
    missing = [v for v in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_EVENT_PATH") if not environ.get(v)]
    if missing:
        raise UserError(f"{', '.join(missing)} not set: the comment is made in a GitHub Actions pull_request job")
    event = json.loads(Path(environ["GITHUB_EVENT_PATH"]).read_text())
    number = (event.get("pull_request") or {}).get("number")
    if not number:
        raise UserError("the event is not a pull request: nothing to comment on")
    api = environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    http = session or requests.Session()
    http.headers.update({"Authorization": f"Bearer {environ['GITHUB_TOKEN']}",
                         "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"})
    issue = f"{api}/repos/{environ['GITHUB_REPOSITORY']}/issues/{number}"
    existing = _find_comment(http, f"{issue}/comments")
    if existing is None:
        reply = http.post(f"{issue}/comments", json={"body": body}, timeout=30)
    else:
        reply = http.patch(f"{api}/repos/{environ['GITHUB_REPOSITORY']}/issues/comments/{existing}",
                           json={"body": body}, timeout=30)
    if reply.status_code >= 300:
        raise UserError(f"GitHub refused the plan comment: {reply.status_code} {reply.text[:200]}")
    return str(reply.json().get("html_url", ""))


def _find_comment(http: requests.Session, url: str) -> int | None:
    page = 1
    while True:
        reply = http.get(url, params={"per_page": 100, "page": page}, timeout=30)
        if reply.status_code >= 300:
            raise UserError(f"GitHub refused to list the comments: {reply.status_code} {reply.text[:200]}")
        comments = reply.json()
        for comment in comments:
            if MARKER in str(comment.get("body", "")):
                return int(comment["id"])
        if len(comments) < 100:
            return None
        page += 1
