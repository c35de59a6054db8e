"""Reaching the Hetzner Cloud API: token and endpoint as the hcloud CLI finds them, one
hcloud-python client per worker thread, and a retry budget for the errors worth retrying.

hcloud-python already retries ``conflict`` and ``rate_limit_exceeded`` a few times; this
layer adds ``locked`` and the 5xx codes, and keeps trying within a time budget, so a
busy or flaky API slows a run down instead of failing it.
"""

from __future__ import annotations

import os
import random
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from hcloud import APIException, Client

from nornos_infra.errors import UserError

DEFAULT_ENDPOINT = "https://api.hetzner.cloud/v1"
RETRY_CODES = frozenset({"rate_limit_exceeded", "conflict", "locked", "server_error", "bad_gateway",
                         "unavailable", "timeout", "maintenance"})
T = TypeVar("T")


def _cli_context_token() -> str | None:
    """The active context's token from the hcloud CLI's config (~/.config/hcloud/cli.toml)."""
    path = Path(os.environ.get("HCLOUD_CONFIG", Path.home() / ".config" / "hcloud" / "cli.toml"))
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("HCLOUD_CONTEXT") or config.get("active_context")
    for context in config.get("contexts", []):
        if context.get("name") == active and context.get("token"):
            return str(context["token"])
    return None


@dataclass
class Connection:
    """Credentials plus per-thread clients; ``budget`` is how long to keep retrying one call."""

    token: str
    endpoint: str = DEFAULT_ENDPOINT
    budget: float = 180.0
    poll_interval: float = 0.5
    _local: threading.local = field(default_factory=threading.local, repr=False)

    @classmethod
    def from_environment(cls) -> Connection:
        token = os.environ.get("HCLOUD_TOKEN") or _cli_context_token()
        if not token:
            raise UserError("no API token: set HCLOUD_TOKEN (or create an hcloud CLI context with "
                            "`hcloud context create`); for localcloud run `invoke localcloud.up` and export what "
                            "it prints")
        endpoint = os.environ.get("HCLOUD_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")
        # NORNOS_POLL_INTERVAL: seconds between action polls (tests on a fast localcloud use less)
        interval = float(os.environ.get("NORNOS_POLL_INTERVAL", "0.5"))
        return cls(token=token, endpoint=endpoint, poll_interval=interval)

    @property
    def client(self) -> Client:
        """This thread's client (requests sessions are not shared between threads)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = Client(token=self.token, api_endpoint=self.endpoint, poll_interval=self.poll_interval,
                            application_name="nornos-infra")
            self._local.client = client
        return client

    # -- calls with a retry budget ---------------------------------------------------------
    def call(self, fn: Callable[[], T], what: str) -> T:
        """Run one API call, retrying retryable errors with backoff until the budget is spent."""
        deadline = time.monotonic() + self.budget
        attempt = 0
        while True:
            try:
                return fn()
            except APIException as exc:
                if exc.code == "unauthorized":
                    raise UserError(f"the API rejected the token ({exc.message}); check HCLOUD_TOKEN and "
                                    f"HCLOUD_ENDPOINT ({self.endpoint})") from None
                if exc.code not in RETRY_CODES and not (isinstance(exc.code, int) and exc.code >= 500):
                    raise
                error: Exception = exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                error = exc
            attempt += 1
            pause = min(8.0, 0.25 * 2 ** attempt) * random.uniform(0.5, 1.0)
            if time.monotonic() + pause > deadline:
                raise UserError(f"{what}: the API kept failing for {self.budget:.0f} s ({error}); "
                                "nothing more was changed, run again to continue") from None
            time.sleep(pause)

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.call(lambda: self.client.request(method, path, **kwargs), what)
        return result

    def list_all(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a list endpoint (50 per page: one request for up to 50 items)."""
        return list(self.iter_all(path, key, params))

    def iter_all(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        page: int | None = 1
        while page is not None:
            data = self.request("GET", path, f"list {key}", params={**(params or {}), "page": page, "per_page": 50})
            yield from data[key]
            page = ((data.get("meta") or {}).get("pagination") or {}).get("next_page")
