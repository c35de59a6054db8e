"""``invoke ci.notify --env E --status S``: one Slack message per deploy, on success and on
failure, through an incoming webhook (``SLACK_WEBHOOK_URL``; without it nothing is sent and
the task says so). The message names the env, the outcome, the commit and a link to the run,
from GitHub's own job variables when they are there."""

from __future__ import annotations

import os
from collections.abc import Mapping

import requests

from nornos_infra.errors import UserError

OUTCOMES = {"success": ":white_check_mark: deployed", "failure": ":x: deploy failed",
            "cancelled": ":warning: deploy cancelled"}


def message(env: str, status: str, environ: Mapping[str, str]) -> str:
    outcome = OUTCOMES.get(status)
    if outcome is None:
        raise UserError(f"--status {status!r}: use one of {', '.join(OUTCOMES)} (GitHub's job.status)")
    text = f"{outcome}: *{env}*"
    sha, repo = environ.get("GITHUB_SHA", ""), environ.get("GITHUB_REPOSITORY", "")
    if sha:
        text += f" at `{sha[:12]}`"
    if repo and environ.get("GITHUB_RUN_ID"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        text += f" (<{server}/{repo}/actions/runs/{environ['GITHUB_RUN_ID']}|run {environ['GITHUB_RUN_ID']}>)"
    return text


def notify(env: str, status: str, environ: Mapping[str, str] | None = None) -> str:
    """Send the message; return what was done, in one line (the webhook's address is a secret: never shown)."""
    environ = os.environ if environ is None else environ
    text = message(env, status, environ)
    url = environ.get("SLACK_WEBHOOK_URL", "")
    if not url:
        return "SLACK_WEBHOOK_URL is not set: no Slack message sent"
    try:
        reply = requests.post(url, json={"text": text}, timeout=15)
    except requests.RequestException as exc:
        raise UserError(f"Slack could not be reached ({type(exc).__name__}); the deploy itself is not affected") \
            from None
    if reply.status_code >= 300:
        raise UserError(f"Slack refused the message: {reply.status_code} {reply.text[:100]}")
    return f"Slack: {text}"
