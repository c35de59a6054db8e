"""A stand-in for the three outside services CI talks to, which cannot be reached from here:
GitHub's REST API (a repository's releases, a pull request's comments), the GitHub container
registry (pull tokens, manifest digests) and a Slack incoming webhook. One HTTP server on
127.0.0.1, answering as the real services document it; every request is recorded, so tests
assert what was sent (and that no secret was)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "github_pat_fake_0123456789"
WEBHOOK_PATH = "/services/T000/B000/fake-webhook-secret"


def digest_of(name: str, tag: str) -> str:
    return "sha256:" + hashlib.sha256(f"{name}:{tag}".encode()).hexdigest()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class State:
    releases: dict[str, list[str]] = field(default_factory=dict)  # repo -> tags, newest first
    images: dict[str, set[str]] = field(default_factory=dict)  # "nornos/auth-service" -> tags
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    slack: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    next_id: int = 1000


class FakeGitHub:
    def __init__(self) -> None:
        self.state = State()
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _handle(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                state.requests.append(Request(self.command, url.path, parse_qs(url.query),
                                              {k.lower(): v for k, v in self.headers.items()}, body))
                status, reply, headers = route(state, self.command, url.path, parse_qs(url.query),
                                               {k.lower(): v for k, v in self.headers.items()}, body)
                self._reply(status, reply, headers)

            do_GET = do_POST = do_PATCH = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _bearer(headers: dict[str, str]) -> str:
    value = headers.get("authorization", "")
    return value.split(" ", 1)[1] if value.startswith("Bearer ") else ""


def route(state: State, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
          body: Any) -> tuple[int, Any, dict[str, str] | None]:
    parts = path.strip("/").split("/")
    if path == WEBHOOK_PATH and method == "POST":
        state.slack.append(body)
        return 200, None, None
    if parts[0] == "token":  # registry: a pull token for Basic auth with the PAT as password
        auth = headers.get("authorization", "")
        password = base64.b64decode(auth[6:]).decode().split(":", 1)[1] if auth.startswith("Basic ") else ""
        if password != TOKEN:
            return 401, {"errors": [{"code": "UNAUTHORIZED"}]}, None
        return 200, {"token": "registry-" + query["scope"][0]}, None
    if parts[0] == "v2" and parts[-2] == "manifests" and method == "HEAD":
        name, tag = "/".join(parts[1:-2]), parts[-1]
        if _bearer(headers) != f"registry-repository:{name}:pull":
            return 401, None, None
        if tag not in state.images.get(name, set()):
            return 404, None, None
        return 200, None, {"Docker-Content-Digest": digest_of(name, tag)}
    if parts[0] != "repos" or _bearer(headers) != TOKEN:
        return 401, {"message": "Bad credentials"}, None
    repo = "/".join(parts[1:3])
    rest = parts[3:]
    if rest == ["releases", "latest"]:
        tags = state.releases.get(repo) or []
        return (200, {"tag_name": tags[0]}, None) if tags else (404, {"message": "Not Found"}, None)
    if rest[:2] == ["releases", "tags"]:
        tag = rest[2]
        return (200, {"tag_name": tag}, None) if tag in state.releases.get(repo, []) else (404, {}, None)
    if rest[:1] == ["issues"] and rest[2:] == ["comments"]:
        number = int(rest[1])
        if method == "GET":
            page = int(query.get("page", ["1"])[0])
            listing = [c for c in state.comments.values() if c["issue"] == number]
            return 200, listing[(page - 1) * 100:page * 100], None
        state.next_id += 1
        comment = {"id": state.next_id, "issue": number, "body": body["body"],
                   "html_url": f"https://github.example/{repo}/pull/{number}#issuecomment-{state.next_id}"}
        state.comments[state.next_id] = comment
        return 201, comment, None
    if rest[:2] == ["issues", "comments"] and method == "PATCH":
        comment = state.comments[int(rest[2])]
        comment["body"] = body["body"]
        return 200, comment, None
    return 404, {"message": "Not Found"}, None
