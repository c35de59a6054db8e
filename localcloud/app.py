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
from typing import Any, NoReturn

from aiohttp import web, web_protocol
from aiohttp.web_request import BaseRequest

import localcloud.api  # noqa: F401  (registers the routes)
from localcloud import errors
from localcloud.closed import check_known_fields
from localcloud.cloud import Cloud
from localcloud.config import ADMIN_ADDRESS
from localcloud.faults import FaultSpecError, parse
from localcloud.profiles import PROFILES
from localcloud.router import Reply, Request, resolve
from localcloud.validate import JSON_NULL

log = logging.getLogger("localcloud")
CLOUD = web.AppKey("cloud", Cloud)
TICK_SECONDS = 0.05
MAX_BODY = 16 * 1024 * 1024  # bytes; a larger body is refused with 413
MAX_JSON_DEPTH = 32  # nesting levels; the API's deepest bodies use 5


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
        if not rule.after and rule.applies(method, path, cloud.rng):
            _drop(cloud, request, entry, started)

    reply = _dispatch(cloud, request, method, path, entry, await request.read())
    for rule in cloud.faults.drops:
        if rule.after and rule.applies(method, path, cloud.rng):
            entry["handled"] = reply.status  # the change was made, only the reply is lost
            _drop(cloud, request, entry, started)
    headers = {**cloud.ratelimit.headers(), **reply.headers}
    code = (reply.body or {}).get("error", {}).get("code") if reply.status >= 400 and reply.body else None
    _record(cloud, entry, reply.status, code, started)
    return _json_response(reply.status, reply.body, headers)


def _drop(cloud: Cloud, request: web.Request, entry: dict[str, Any], started: float) -> NoReturn:
    """Close the connection without a reply (an injected fault)."""
    _record(cloud, entry, 0, "dropped", started)
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError()


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
        body = parse_body(raw)
        check_known_fields(f"{method} {route.pattern}", body)
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        with cloud.store.lock:
            cloud.engine.advance()
            with cloud.store.transaction():
                return route.handler(Request(cloud, method, path, params, query, body))
    except errors.ApiError as exc:
        return _error_reply(exc)
    except RecursionError:  # input nested beyond what a handler walks: the client's mistake
        return _error_reply(errors.ApiError("invalid_input", "request nests too deeply"))
    except Exception:  # a bug in localcloud: answer like the real API, keep the trace in the log
        log.error("internal error on %s %s\n%s", method, path, traceback.format_exc())
        return _error_reply(errors.ApiError("server_error", "internal server error"))


def parse_body(raw: bytes) -> Any:
    """A request body as JSON, or json_error: not UTF-8, not JSON, NaN/Infinity (not JSON either),
    or nested deeper than :data:`MAX_JSON_DEPTH` (never a RecursionError further in)."""
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.ApiError("json_error", "request body is not UTF-8") from None

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        body = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise errors.ApiError("json_error", f"request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise errors.ApiError("json_error", f"invalid JSON in request body: {str(exc)[:120]}") from None
    if body is None:  # the text null: refused where a JSON object is read (validate.Body), unlike no body
        return JSON_NULL
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:  # iteratively: the depth check itself must not recurse
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise errors.ApiError("json_error", f"request body nests deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return body


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
                              "hosts": s.hosts, "uptime": round(time.time() - cloud.started, 3),
                              "admin_address": ADMIN_ADDRESS,
                              "machines": cloud.machines.machine_count()})


async def side_objectstorage(request: web.Request) -> web.Response:
    """Where the S3 stand-in listens, its CA and its one access key (loopback only, as the API)."""
    info = request.app[CLOUD].objectstorage
    if info is None:
        return web.json_response({"error": "Object Storage is not running in this localcloud"}, status=404)
    return web.json_response(info)


async def side_requests(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD]
    if request.method == "DELETE":
        cloud.request_log.clear()
        return web.json_response({"cleared": True})
    raw = request.query.get("since", "0")
    if not (raw.isascii() and raw.isdigit()):
        return _side_error("since must be a request sequence number")
    since = int(raw)
    items = [e for e in cloud.request_log if e["seq"] > since]
    return web.json_response({"requests": items, "last_seq": cloud.request_seq})


def _side_error(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _side_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise _SideError(f"body is not JSON: {exc}") from exc


class _SideError(Exception):
    pass


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
            data = await _side_json(request)
            if not isinstance(data, dict):
                raise FaultSpecError("faults must be a JSON object")
            cloud.set_faults(parse(data))
        except (FaultSpecError, _SideError) as exc:
            return _side_error(str(exc))
    elif request.method != "GET":
        return web.json_response({"error": "use GET or PUT"}, status=405)
    return web.json_response(cloud.faults.to_json())


def _config_json(cloud: Cloud) -> dict[str, Any]:
    return {"rate_limit": cloud.ratelimit.limit, "limits": cloud.limits, "time_scale": cloud.engine.time_scale,
            "profile": cloud.engine.profile}


async def side_config(request: web.Request) -> web.Response:
    """GET or PUT {"rate_limit", "rate_limit_remaining", "limits", "time_scale", "profile"} (any subset).

    Reset (POST /_localcloud/reset) returns to the configuration localcloud started with.
    """
    cloud = request.app[CLOUD]
    if request.method == "PUT":
        try:
            data = await _side_json(request)
            _apply_config(cloud, data)
        except _SideError as exc:
            return _side_error(str(exc))
    elif request.method != "GET":
        return web.json_response({"error": "use GET or PUT"}, status=405)
    return web.json_response(_config_json(cloud))


def _count(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _SideError(f"{key} must be an integer >= 0")
    return value


def _apply_config(cloud: Cloud, data: Any) -> None:
    """Validate everything first, then apply: a bad document changes nothing."""
    if not isinstance(data, dict):
        raise _SideError("config must be a JSON object")
    unknown = set(data) - {"rate_limit", "rate_limit_remaining", "limits", "time_scale", "profile"}
    if unknown:
        raise _SideError(f"unknown config keys: {', '.join(sorted(unknown))}")
    rate = _count(data, "rate_limit") if "rate_limit" in data else None
    remaining = _count(data, "rate_limit_remaining") if "rate_limit_remaining" in data else None
    limits: dict[str, int] = {}
    if "limits" in data:
        if not isinstance(data["limits"], dict):
            raise _SideError("limits must be an object of name: count")
        limits = {str(k): _count(data["limits"], k) for k in data["limits"]}
    time_scale = None
    if "time_scale" in data:
        value = data["time_scale"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise _SideError("time_scale must be a number >= 0")
        time_scale = float(value)
    profile = None
    if "profile" in data:
        if data["profile"] not in PROFILES:
            raise _SideError(f"profile must be one of {', '.join(sorted(PROFILES))}")
        profile = str(data["profile"])
    if rate is not None or remaining is not None:
        cloud.ratelimit.configure(cloud.ratelimit.limit if rate is None else rate, remaining)
        cloud.settings.rate_limit = cloud.ratelimit.limit
    cloud.limits.update(limits)
    if time_scale is not None:
        cloud.engine.time_scale = cloud.settings.time_scale = time_scale
    if profile is not None:
        cloud.engine.profile = cloud.settings.profile = profile


async def side_reset(request: web.Request) -> web.Response:
    """Forget all resources, requests and faults; back to the starting configuration and a
    full rate-limit budget (between tests)."""
    cloud = request.app[CLOUD]
    if cloud.machines.real:  # real machines go with their servers
        await asyncio.to_thread(cloud.machines.destroy_all)
    with cloud.store.lock:
        cloud.store.reset()
        cloud.engine.reset()
    cloud.request_log.clear()
    cloud.request_seq = 0
    cloud.set_faults(parse(None))
    cloud.restore_config()
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


# -- errors of the HTTP layer, in the API's format ---------------------------------------------
_HTTP_CODES = {400: "invalid_input", 404: "not_found", 405: "method_not_allowed", 413: "invalid_input",
               414: "invalid_input", 431: "invalid_input"}
_HTTP_MESSAGES = {400: "malformed HTTP request", 404: "not found", 405: "method not allowed",
                  413: f"request body larger than {MAX_BODY} bytes", 414: "request URL too long",
                  431: "request headers too large"}


def http_error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """The API's error object for an error of the HTTP layer. The message is fixed per status:
    never the request's own text (an over-long header may be the Authorization header)."""
    code = _HTTP_CODES.get(status, "server_error" if status >= 500 else "invalid_input")
    return errors.ApiError(code, message or _HTTP_MESSAGES.get(status, "request refused"), status=status).body()


@web.middleware
async def hetzner_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own refusals (no route such as GET /v1, body too big, bad method) as API errors."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith("/_localcloud/"):
            raise
        return web.json_response(http_error_body(exc.status), status=exc.status)


class _HetznerRequestHandler(web_protocol.RequestHandler):
    """Errors of the HTTP parser (a header or URL too long, a malformed request) as API errors.
    aiohttp answers them before any middleware runs, in plain text, and its 400 for an over-long
    header quotes the start of that header, which may be the token."""

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status >= 500:
            log.error("HTTP layer error: %s", type(exc).__name__ if exc else "unknown")
        if request.writer.output_size > 0:
            raise ConnectionError("response already sent")
        reason = type(exc).__name__ if exc is not None else ""
        if status == 400 and "LineTooLong" in reason:
            text = "request line or header too long"
        elif status == 400 and "Header" in reason:
            text = "malformed request header"
        else:
            text = None
        response = web.Response(status=status, text=json.dumps(http_error_body(status, text)),
                                content_type="application/json")
        response.force_close()
        return response


class _HetznerServer(web.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return _HetznerRequestHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """The AppRunner localcloud serves with: the HTTP layer's own errors in the API's format."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _HetznerServer
        return server


def build_app(cloud: Cloud) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[hetzner_errors])
    app[CLOUD] = cloud
    app.router.add_get("/_localcloud/health", side_health)
    app.router.add_get("/_localcloud/objectstorage", side_objectstorage)
    app.router.add_route("*", "/_localcloud/requests", side_requests)
    app.router.add_get("/_localcloud/stats", side_stats)
    app.router.add_route("*", "/_localcloud/faults", side_faults)
    app.router.add_route("*", "/_localcloud/config", side_config)
    app.router.add_post("/_localcloud/reset", side_reset)
    app.router.add_route("*", "/v1/{tail:.*}", handle_v1)
    app.cleanup_ctx.append(_ticker)
    return app
