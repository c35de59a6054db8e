"""Reaching the Hetzner Cloud API: token and endpoint as the hcloud CLI finds them (and
checked before they are used), one hcloud-python client per worker thread, timeouts on every
request, and a retry budget for the errors worth retrying.

- Every request has a connect timeout (:data:`CONNECT_TIMEOUT`) and a read timeout
  (:data:`READ_TIMEOUT`): an endpoint that accepts and never answers cannot hang a run.
- Until the endpoint has answered once like the API, nothing is retried: a dead, wrong or
  non-API endpoint (refused, unknown host, TLS on a plain port, HTML, a timeout) fails at once
  with one line naming it.
- After that only transient errors are retried, within :attr:`Connection.budget`:
  ``conflict``, ``rate_limit_exceeded``, ``locked``, ``maintenance``, the 5xx codes, a lost
  connection and a timeout. hcloud-python's own retries are off (they sleep up to 60 s a
  time and retry timeouts blindly); this layer is the only one.
"""

from __future__ import annotations

import ipaddress
import os
import random
import threading
import time
import tomllib
import urllib.parse
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
CONNECT_TIMEOUT = 5.0  # seconds to open a connection
READ_TIMEOUT = 15.0  # seconds to wait for a reply (the API answers in well under 2 s)
MAX_TOKEN_LENGTH = 1024
T = TypeVar("T")


def check_endpoint(value: str) -> str:
    """HCLOUD_ENDPOINT as a usable API URL (trailing slash dropped); UserError naming the problem.
    Plain http only to this machine: anywhere else it would send the token unencrypted."""
    endpoint = value.strip().rstrip("/")
    fix = "e.g. https://api.hetzner.cloud/v1, or http://127.0.0.1:8700/v1 for localcloud"
    if not endpoint.isprintable() or any(c.isspace() for c in endpoint) or len(endpoint) > 2048:
        raise UserError(f"HCLOUD_ENDPOINT is not a URL (it holds spaces or control characters); {fix}")
    try:
        url = urllib.parse.urlsplit(endpoint)
        port = url.port
    except ValueError:
        raise UserError(f"HCLOUD_ENDPOINT {endpoint!r} is not a URL (bad host or port); {fix}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise UserError(f"HCLOUD_ENDPOINT {endpoint!r} is not an http(s) URL with a host; {fix}")
    if url.username is not None or url.password is not None:
        raise UserError("HCLOUD_ENDPOINT must not hold credentials (user:password@); the token goes in "
                        "HCLOUD_TOKEN")
    if url.query or url.fragment:
        raise UserError(f"HCLOUD_ENDPOINT {endpoint!r} must not have a query or fragment; {fix}")
    if port == 0:
        raise UserError(f"HCLOUD_ENDPOINT {endpoint!r}: port 0 is not a port; {fix}")
    if url.scheme == "http" and not _loopback(url.hostname):
        raise UserError(f"HCLOUD_ENDPOINT {endpoint!r} is plain http to another machine: the token would travel "
                        "unencrypted; use https (plain http is for localcloud on this machine)")
    return endpoint


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(token: str, source: str) -> str:
    """A token that can go into an HTTP header; never echoed (it is a secret)."""
    token = token.strip()
    if not token:
        raise UserError(f"{source} is empty; set HCLOUD_TOKEN to the project's API token")
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or not token.isprintable() or " " in token:
        raise UserError(f"{source} is not an API token (it holds spaces, control or non-ASCII characters, or is "
                        f"longer than {MAX_TOKEN_LENGTH}); copy the token again from the Hetzner Console")
    return token


def _poll_interval() -> float:
    raw = os.environ.get("NORNOS_POLL_INTERVAL", "0.5")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 60.0:
        raise UserError("NORNOS_POLL_INTERVAL must be a number of seconds above 0 and at most 60 (default 0.5); "
                        "unset it or fix it")
    return value


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


def _ask_localcloud(endpoint: str) -> str | None:
    url = endpoint.removesuffix("/v1").rstrip("/") + "/_localcloud/health"
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        return None  # localcloud only serves this machine: never ask anything else
    try:
        reply = requests.get(url, timeout=3)
        data: object = reply.json() if reply.ok else None
    except (requests.RequestException, ValueError):
        return None
    address = data.get("admin_address") if isinstance(data, dict) else None
    return str(address) if address else None


@dataclass
class Connection:
    """Credentials plus per-thread clients; ``budget`` is how long to keep retrying one call."""

    token: str = field(repr=False)
    endpoint: str = DEFAULT_ENDPOINT
    budget: float = 180.0
    poll_interval: float = 0.5
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT)
    reached: bool = False  # the endpoint has answered like the API at least once
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _localcloud: list[str | None] = field(default_factory=list, repr=False)  # asked once: [answer]

    @classmethod
    def from_environment(cls) -> Connection:
        """Token and endpoint from the environment, checked before any request."""
        env_token = os.environ.get("HCLOUD_TOKEN")
        token = env_token if env_token is not None and env_token.strip() else _cli_context_token()
        if not token:
            raise UserError("no API token: set HCLOUD_TOKEN (or create an hcloud CLI context with "
                            "`hcloud context create`); for localcloud run `invoke localcloud.up` and export what "
                            "it prints")
        source = "HCLOUD_TOKEN" if env_token and env_token.strip() else "the hcloud CLI context's token"
        endpoint = check_endpoint(os.environ.get("HCLOUD_ENDPOINT") or DEFAULT_ENDPOINT)
        # NORNOS_POLL_INTERVAL: seconds between action polls (tests on a fast localcloud use less)
        return cls(token=check_token(token, source), endpoint=endpoint, poll_interval=_poll_interval())

    @property
    def client(self) -> Client:
        """This thread's client (requests sessions are not shared between threads)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = Client(token=self.token, api_endpoint=self.endpoint, poll_interval=self.poll_interval,
                            application_name="nornos-infra", timeout=self.timeout)
            # hcloud-python retries timeouts and some codes itself, sleeping up to 60 s a time:
            # off, so that call() alone decides (fail fast on a dead endpoint, budget after)
            client._client._retry_max_retries = 0
            self._local.client = client
        return client

    # -- calls with a retry budget ---------------------------------------------------------
    def call(self, fn: Callable[[], T], what: str) -> T:
        """Run one API call, retrying transient errors with backoff until the budget is spent."""
        deadline = time.monotonic() + self.budget
        attempt = 0
        while True:
            try:
                result = fn()
                self.reached = True
                return result
            except APIException as exc:
                if isinstance(exc.code, int):  # an HTTP error without the API's JSON error body
                    if exc.code < 500 or not self.reached:
                        raise self._not_the_api(f"answered {what} with HTTP {exc.code} {exc.message}") from None
                elif exc.code in ("unauthorized", "token_readonly"):
                    raise UserError(f"the API at {self.endpoint} rejected the token ({exc.message}); check "
                                    "HCLOUD_TOKEN (a read-write token of the right project) and HCLOUD_ENDPOINT") \
                        from None
                elif exc.code == "not_found" and not self.reached:  # no such endpoint: not the API's root
                    raise self._not_the_api(f"has no {what} (not_found); it must be the API's root, ending in "
                                            "/v1") from None
                elif exc.code not in RETRY_CODES:
                    self.reached = True
                    raise
                self.reached = self.reached or not isinstance(exc.code, int)
                error: Exception = exc
            except requests.exceptions.SSLError as exc:
                raise self._not_the_api(f"failed the TLS handshake ({_reason(exc)}); is it https on an http "
                                        "port, or a certificate for another name?") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if not self.reached:
                    kind = "did not answer in time" if isinstance(exc, requests.Timeout) else "cannot be reached"
                    raise self._not_the_api(f"{kind} ({_reason(exc)})") from None
                error = exc
            except requests.RequestException as exc:
                raise self._not_the_api(f"cannot be used ({_reason(exc)})") from None
            attempt += 1
            pause = min(8.0, 0.25 * 2 ** attempt) * random.uniform(0.5, 1.0)
            if time.monotonic() + pause > deadline:
                raise UserError(f"{what}: the API kept failing for {self.budget:.0f} s ({error}); "
                                "nothing more was changed, run again to continue") from None
            time.sleep(pause)

    def _not_the_api(self, problem: str) -> UserError:
        return UserError(f"HCLOUD_ENDPOINT {self.endpoint} {problem}; check HCLOUD_ENDPOINT (the Hetzner Cloud API, "
                         "https://api.hetzner.cloud/v1, or localcloud's http://127.0.0.1:8700/v1) and that it is up; "
                         "nothing was changed by this request")

    def request(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        result: Any = self.call(lambda: self.client.request(method, path, **kwargs), what)
        if not isinstance(result, dict):
            raise self._not_the_api(f"answered {what} with JSON that is not an object")
        return result

    def localcloud_admin_address(self) -> str | None:
        """This machine's address on localcloud's public side when the endpoint is a localcloud on
        this machine (its side door says so), else None: the real Hetzner API, or anything else."""
        if not self._localcloud:
            self._localcloud.append(_ask_localcloud(self.endpoint))
        return self._localcloud[0]

    @property
    def is_localcloud(self) -> bool:
        return self.localcloud_admin_address() is not None

    def check_write_access(self) -> None:
        """Whether the token may write, without writing: a create with an empty body can never
        create anything; a read-write token gets invalid_input, a read-only one token_readonly."""
        try:
            self.client.request("POST", "/ssh_keys", json={})
        except APIException as exc:
            if exc.code == "token_readonly":
                raise UserError(f"the token can only read (the API at {self.endpoint} answered token_readonly); "
                                "applying needs a read-write token: create one in the Hetzner Console (Security, "
                                "API tokens) and set HCLOUD_TOKEN; --dry-run works with this one") from None
            if exc.code in ("unauthorized", "forbidden"):
                raise UserError(f"the API at {self.endpoint} refused the token for writing ({exc.message}); set "
                                "HCLOUD_TOKEN to a read-write token of this project") from None
        except requests.RequestException as exc:
            raise self._not_the_api(f"failed the write-permission check ({_reason(exc)})") from None

    def list_all(self, path: str, key: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a list endpoint (50 per page: one request for up to 50 items)."""
        return list(self.iter_all(path, key, params))

    def iter_all(self, path: str, key: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        page: int | None = 1
        while page is not None:
            data = self.request("GET", path, f"list {key}", params={**(params or {}), "page": page, "per_page": 50})
            items = data.get(key)
            if not isinstance(items, list):
                raise self._not_the_api(f"answered GET {path} without a list of {key}")
            yield from items
            page = ((data.get("meta") or {}).get("pagination") or {}).get("next_page")


def _reason(exc: Exception) -> str:
    """The innermost cause of a requests error, in a few words (never a URL with a token)."""
    cause: BaseException = exc
    while True:
        inner = cause.__cause__ or cause.__context__ or (cause.args[0] if cause.args and isinstance(
            cause.args[0], BaseException) else None)
        if inner is None or inner is cause:
            break
        cause = inner
    reason = getattr(cause, "reason", None)
    if isinstance(reason, BaseException):
        cause = reason
    text = str(cause).split(":")[-1].strip() or type(cause).__name__
    return f"{type(cause).__name__}: {text}"[:160]
