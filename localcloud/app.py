"""The HTTP server: Hetzner Cloud API v1 under /v1, and localcloud's side door under /_localcloud.

Every /v1 request passes, in order: injected latency and dropped connections, the rate
limit (every request counts, as on the real API), authentication, injected errors, JSON
parsing, then its handler inside one store transaction. Each is written to the request
log that tests and benchmarks read from ``/_localcloud/requests``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from collections import Counter
from typing import Any

from aiohttp import web

import localcloud.api  # noqa: F401  (registers the routes)
from localcloud import errors
from localcloud.cloud import Cloud
from localcloud.faults import FaultSpecError, parse
from localcloud.router import Reply, Request, resolve

log = logging.getLogger("localcloud")
CLOUD = web.AppKey("cloud", Cloud)
TICK_SECONDS = 0.05


def _json_response(status: int, body: dict[str, Any] | None, headers: dict[str, str]) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


def _error_reply(exc: errors.ApiError) -> Reply:
    return Reply(exc.status, exc.body())


async def handle_v1(request: web.Request) -> web.StreamResponse:
    cloud = request.app[CLOUD]
    started = time.perf_counter()
    method = request.method
    path = request.path[len("/v1"):] or "/"
    entry: dict[str, Any] = {"method": method, "path": path, "query": request.query_string, "route": None}

    for rule in cloud.faults.latency:
        if rule.applies(method, path, cloud.rng):
            await asyncio.sleep(rule.seconds)
    for rule in cloud.faults.drops:
        if rule.applies(method, path, cloud.rng):
            _record(cloud, entry, 0, "dropped", started)
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError()

    reply = _dispatch(cloud, request, method, path, entry, await request.read())
    headers = {**cloud.ratelimit.headers(), **reply.headers}
    code = (reply.body or {}).get("error", {}).get("code") if reply.status >= 400 and reply.body else None
    _record(cloud, entry, reply.status, code, started)
    return _json_response(reply.status, reply.body, headers)


def _dispatch(cloud: Cloud, request: web.Request, method: str, path: str, entry: dict[str, Any],
              raw: bytes) -> Reply:
    if not cloud.ratelimit.take():
        return _error_reply(errors.ApiError("rate_limit_exceeded", "limit of requests per hour reached"))
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.startswith("Bearer ") else ""
    if token not in (cloud.settings.token, cloud.settings.readonly_token):
        message = "request was made without a token" if not token else "the token you have provided is invalid"
        return _error_reply(errors.ApiError("unauthorized", message))
    if token == cloud.settings.readonly_token and method != "GET":
        return _error_reply(errors.ApiError("token_readonly", "the token is only allowed to perform GET requests"))
    try:
        route, params = resolve(method, path)
        entry["route"] = f"{method} {route.pattern}"
        for rule in cloud.faults.errors:
            if rule.applies(method, path, cloud.rng):
                raise errors.ApiError(rule.code, f"{rule.code} (injected fault)")
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise errors.ApiError("json_error", f"invalid JSON in request body: {exc}") from exc
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        with cloud.store.lock:
            cloud.engine.advance()
            with cloud.store.transaction():
                return route.handler(Request(cloud, method, path, params, query, body))
    except errors.ApiError as exc:
        return _error_reply(exc)
    except Exception:  # a bug in localcloud: answer like the real API, keep the trace in the log
        log.error("internal error on %s %s\n%s", method, path, traceback.format_exc())
        return _error_reply(errors.ApiError("server_error", "internal server error"))


def _record(cloud: Cloud, entry: dict[str, Any], status: int, code: str | None, started: float) -> None:
    cloud.request_seq += 1
    entry.update(seq=cloud.request_seq, status=status, code=code, time=time.time(),
                 duration_ms=round((time.perf_counter() - started) * 1000, 3))
    cloud.request_log.append(entry)


# -- side door -------------------------------------------------------------------------------
async def side_health(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    s = cloud.settings
    return web.json_response({"status": "ok", "profile": s.profile, "time_scale": s.time_scale,
                              "hosts": s.hosts, "uptime": round(time.time() - cloud.started, 3)})


async def side_requests(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    if request.method == "DELETE":
        cloud.request_log.clear()
        return web.json_response({"cleared": True})
    since = int(request.query.get("since", "0"))
    items = [e for e in cloud.request_log if e["seq"] > since]
    return web.json_response({"requests": items, "last_seq": cloud.request_seq})


async def side_stats(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    by_status = Counter(str(e["status"]) for e in cloud.request_log)
    by_route = Counter(e["route"] or f"{e['method']} {e['path']}" for e in cloud.request_log)
    kinds = ("server", "volume", "network", "firewall", "load_balancer", "ssh_key", "placement_group",
             "primary_ip", "image", "action")
    running = sum(1 for a in cloud.store.all("action") if a["status"] == "running")
    return web.json_response({
        "requests": cloud.request_seq, "by_status": dict(by_status), "by_route": dict(by_route),
        "resources": {k: cloud.store.count(k) for k in kinds}, "actions_running": running,
        "rate_limit": cloud.ratelimit.headers(),
    })


async def side_faults(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    if request.method == "PUT":
        try:
            cloud.set_faults(parse(await request.json()))
        except (FaultSpecError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(cloud.faults.to_json())


async def side_config(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    if request.method == "PUT":
        data = await request.json()
        if "rate_limit" in data:
            cloud.ratelimit.configure(int(data["rate_limit"]))
        if "limits" in data:
            cloud.limits.update({str(k): int(v) for k, v in data["limits"].items()})
        if "time_scale" in data:
            cloud.engine.time_scale = cloud.settings.time_scale = float(data["time_scale"])
        if "profile" in data:
            cloud.engine.profile = cloud.settings.profile = str(data["profile"])
    return web.json_response({"rate_limit": cloud.ratelimit.limit, "limits": cloud.limits,
                              "time_scale": cloud.engine.time_scale, "profile": cloud.engine.profile})


async def side_reset(request: web.Request) -> web.Response:
    """Forget all resources, requests, faults and the rate-limit budget (between tests)."""
    cloud = request.app[CLOUD]
    with cloud.store.lock:
        cloud.store.reset()
        cloud.engine.reset()
    cloud.request_log.clear()
    cloud.request_seq = 0
    cloud.set_faults(parse(None))
    cloud.ratelimit.configure(cloud.ratelimit.limit)
    return web.json_response({"reset": True})


async def _ticker(app: web.Application) -> Any:
    """Finish due actions even when no request arrives."""
    cloud = app[CLOUD]

    async def loop() -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                with cloud.store.lock:
                    cloud.engine.advance()
            except Exception:
                log.error("action ticker failed\n%s", traceback.format_exc())

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    cloud.store.close()


def build_app(cloud: Cloud) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[CLOUD] = cloud
    app.router.add_get("/_localcloud/health", side_health)
    app.router.add_route("*", "/_localcloud/requests", side_requests)
    app.router.add_get("/_localcloud/stats", side_stats)
    app.router.add_route("*", "/_localcloud/faults", side_faults)
    app.router.add_route("*", "/_localcloud/config", side_config)
    app.router.add_post("/_localcloud/reset", side_reset)
    app.router.add_route("*", "/v1/{tail:.*}", handle_v1)
    app.cleanup_ctx.append(_ticker)
    return app
