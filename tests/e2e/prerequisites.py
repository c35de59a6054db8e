"""What an e2e test does when its machine cannot run it: outside CI it skips and says why; under
``CI=true`` it fails, so a CI run that silently tested nothing on real hosts cannot pass."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NoReturn

import pytest


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() in ("1", "true", "yes")


def decide(reason: str, ci: bool) -> tuple[str, str]:
    """("skip" | "fail", the message) for a missing prerequisite."""
    if ci:
        return "fail", f"CI=true, and this test cannot run here: {reason}"
    return "skip", reason


def skip_or_fail(reason: str, environ: Mapping[str, str] | None = None) -> NoReturn:
    verdict, message = decide(reason, in_ci(environ))
    if verdict == "fail":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
