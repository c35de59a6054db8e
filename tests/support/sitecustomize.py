"""Loaded by every Python subprocess the tests start (tests/conftest.py puts this folder on
PYTHONPATH): provision.py, invoke tasks and the like.

- ``NORNOS_EXCHANGE_DIR`` set: every HTTP exchange of a ``requests`` session (what
  hcloud-python and nornos_infra use) is appended to ``<dir>/<pid>.jsonl``: method, URL,
  request body, status, response body. The test that started the process checks them
  against Hetzner's OpenAPI document (tests/spec.py), so the project's own requests are
  validated, not only those the tests send.
- ``COVERAGE_PROCESS_START`` set: coverage measures the subprocess too.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any


def _record_exchanges(directory: str) -> None:
    import requests

    lock = threading.Lock()
    target = os.path.join(directory, f"{os.getpid()}.jsonl")
    original = requests.Session.__init__

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        req = response.request
        body = req.body.decode() if isinstance(req.body, bytes) else req.body
        try:
            reply = response.json() if response.content else None
        except ValueError:
            reply = {"__not_json__": response.text[:200]}
        line = json.dumps({"method": req.method, "url": req.url, "body": body, "status": response.status_code,
                           "reply": reply})
        with lock, open(target, "a", encoding="utf-8") as out:
            out.write(line + "\n")

    def init(self: requests.Session, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.hooks["response"].append(hook)

    requests.Session.__init__ = init  # type: ignore[method-assign]


if os.environ.get("NORNOS_EXCHANGE_DIR"):
    _record_exchanges(os.environ["NORNOS_EXCHANGE_DIR"])
if os.environ.get("COVERAGE_PROCESS_START"):
    import coverage

    coverage.process_startup()
