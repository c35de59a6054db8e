"""``python -m localcloud serve ...``: run a local Hetzner Cloud API."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path

from localcloud.config import DEFAULT_LIMITS, DEFAULT_READONLY_TOKEN, DEFAULT_TOKEN, Settings
from localcloud.faults import FaultSpecError, parse
from localcloud.profiles import PROFILES


def _limit(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or name not in DEFAULT_LIMITS or not value.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected NAME=N with NAME one of {', '.join(DEFAULT_LIMITS)}, got {text!r}")
    return name, int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localcloud",
                                     description="localcloud: a local Hetzner Cloud API (v1).")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="serve the API",
        description="Serve the Hetzner Cloud API v1 at http://HOST:PORT/v1. Point clients at it with "
                    "HCLOUD_ENDPOINT=http://HOST:PORT/v1 and HCLOUD_TOKEN=<token>.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8700, help="port (default 8700; 0 picks a free one)")
    serve.add_argument("--state", type=Path, default=None,
                       help="state directory (SQLite); the cloud survives restarts. Default: memory only")
    serve.add_argument("--token", default=os.environ.get("LOCALCLOUD_TOKEN", DEFAULT_TOKEN),
                       help=f"read-write API token (default {DEFAULT_TOKEN!r} or $LOCALCLOUD_TOKEN)")
    serve.add_argument("--readonly-token", default=DEFAULT_READONLY_TOKEN,
                       help=f"read-only API token (default {DEFAULT_READONLY_TOKEN!r})")
    serve.add_argument("--profile", choices=sorted(PROFILES), default="fast",
                       help="action latency profile: fast (tests, default) or realistic (real timings)")
    serve.add_argument("--time-scale", type=float, default=1.0,
                       help="multiply every action duration (0: actions finish by the next request)")
    serve.add_argument("--rate-limit", type=int, default=3600, help="requests per hour (default 3600)")
    serve.add_argument("--limit", type=_limit, action="append", default=[], metavar="NAME=N",
                       help=f"project limit, repeatable; names: {', '.join(DEFAULT_LIMITS)}")
    serve.add_argument("--faults", default=None,
                       help="fault injection document: JSON text or @file (see localcloud/faults.py)")
    serve.add_argument("--seed", type=int, default=None, help="random seed for fault injection")
    serve.add_argument("--hosts", choices=("none", "nspawn"), default="none",
                       help="none: API only; nspawn: servers are real Debian machines (root)")
    serve.add_argument("--port-file", type=Path, default=None,
                       help="write {\"port\", \"pid\", \"endpoint\"} here once listening")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.time_scale < 0:
        print("localcloud: --time-scale must be 0 or more", file=sys.stderr)
        return 2
    try:
        parse(args.faults)
    except (FaultSpecError, OSError) as exc:
        print(f"localcloud: bad --faults: {exc}", file=sys.stderr)
        return 2
    limits = dict(DEFAULT_LIMITS)
    limits.update(dict(args.limit))
    settings = Settings(host=args.host, port=args.port, state_dir=args.state, token=args.token,
                        readonly_token=args.readonly_token, profile=args.profile, time_scale=args.time_scale,
                        rate_limit=args.rate_limit, limits=limits, faults=args.faults, seed=args.seed,
                        hosts=args.hosts)
    if settings.hosts == "nspawn":
        print("localcloud: --hosts nspawn is not available yet (issue 3); use --hosts none", file=sys.stderr)
        return 2
    return serve(settings, args.port_file)


def serve(settings: Settings, port_file: Path | None) -> int:
    import asyncio
    import socket

    from localcloud.app import build_app
    from localcloud.cloud import Cloud

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        print(f"localcloud: cannot listen on {settings.host}:{settings.port}: {exc.strerror}; "
              "choose another --port", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    cloud = Cloud(settings)
    endpoint = f"http://{settings.host}:{port}/v1"
    if port_file is not None:
        port_file.parent.mkdir(parents=True, exist_ok=True)
        port_file.write_text(json.dumps({"port": port, "pid": os.getpid(), "endpoint": endpoint}))
    print(f"localcloud serving {endpoint} (profile {settings.profile}, time scale {settings.time_scale}, "
          f"state {settings.state_dir or 'in memory'})", flush=True)
    print(f"  export HCLOUD_ENDPOINT={endpoint} HCLOUD_TOKEN={settings.token}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(build_app(cloud), sock))
    return 0


async def _run(app: object, sock: object) -> None:
    import asyncio
    import signal
    import socket

    from aiohttp import web

    assert isinstance(app, web.Application) and isinstance(sock, socket.socket)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
