"""``python -m localcloud serve ...``: run a local Hetzner Cloud API."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from localcloud.config import DEFAULT_LIMITS, DEFAULT_READONLY_TOKEN, DEFAULT_TOKEN, Settings
from localcloud.faults import FaultSpecError, parse
from localcloud.profiles import PROFILES

if TYPE_CHECKING:
    from localcloud.objectstorage import ObjectStorage


class _Parser(argparse.ArgumentParser):
    """Errors in one line on stderr (exit status 2), pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"localcloud: {message} (see: {self.prog} --help)\n")


def _limit(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or name not in DEFAULT_LIMITS or not (value.isascii() and value.isdigit()):
        raise argparse.ArgumentTypeError(
            f"expected NAME=N with NAME one of {', '.join(DEFAULT_LIMITS)}, got {text!r}")
    return name, int(value)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {text!r}")
    return int(text)


def _time_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _rate_limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of requests per hour >= 1, got {text!r}")
    return int(text)


def _token(text: str) -> str:
    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError("a token must be non-empty and contain no spaces")
    return text


SERVE_DESCRIPTION = """\
Serve the Hetzner Cloud API v1 at http://HOST:PORT/v1, for hcloud-python, the hcloud CLI,
Terraform or plain HTTP. Point clients at it:

  export HCLOUD_ENDPOINT=http://127.0.0.1:8700/v1 HCLOUD_TOKEN=localcloud-token
  python -c 'from hcloud import Client; print(Client(token="localcloud-token",
             api_endpoint="http://127.0.0.1:8700/v1").locations.get_all())'

Behaves like the real API: bearer-token auth (a read-only token gets token_readonly on
writes), the spec's error codes and bodies, pagination, label selectors, sort, the rate
limit with RateLimit-* headers and 429 rate_limit_exceeded, and actions that run from
running to success on the chosen latency profile."""

SERVE_EPILOG = """\
side door (not part of the Hetzner API), under http://HOST:PORT/_localcloud/:
  GET  health             status, profile, time scale, uptime
  GET  objectstorage      the S3 stand-in for Hetzner Object Storage: endpoint, CA file, access key
  GET  requests[?since=N] request log (method, path, route, status, code, duration_ms);
  DELETE requests         clears it
  GET  stats              requests per route and status, resources per kind, running actions
  GET|PUT faults          fault injection document (below)
  GET|PUT config          {"rate_limit", "rate_limit_remaining", "limits", "time_scale", "profile"}
  POST reset              forget everything; back to the starting configuration

fault document (--faults JSON or --faults @file.json, or PUT /_localcloud/faults):
  {"errors":  [{"method": "POST", "path": "/servers", "code": "conflict", "times": 2}],
   "latency": [{"method": "*", "path": "/servers*", "seconds": 0.2}],
   "drops":   [{"method": "GET", "path": "/actions*", "rate": 0.1}],
   "actions": {"create_server": 0.5},
   "unavailable": [{"server_type": "cx23", "location": "fsn1"}],
   "apt":     [{"fault": "error", "rate": 0.1, "status": 503}, {"fault": "cut", "rate": 0.1},
               {"fault": "stall", "rate": 0.05, "seconds": 30, "path": "*.deb"}]}
  path is a glob below /v1, rate a probability (default 1), times how often a rule fires.
  apt rules (--hosts nspawn) act on the machines' requests to the apt proxy; path is a glob
  on the URL path; the first rule that fires wins.

examples:
  python -m localcloud serve                                  # port 8700, in memory
  python -m localcloud serve --state ~/.localcloud --port 0 --port-file port.json
  python -m localcloud serve --profile realistic --rate-limit 3600
  python -m localcloud serve --time-scale 0 --faults '{"actions": {"create_server": 0.1}}'

real hosts (--hosts nspawn; root on Linux; scripts/hosts-deps.sh installs what it needs):
  every server is a Debian machine (systemd-nspawn, systemd as init, sshd) in network
  namespace lc-<server id>: eth0 with its public IPs on bridge lc-pub, where this machine
  is 198.51.100.1 (the internet and the admin); enp7s0, enp8s0, ... with its private IPs
  on bridge lc-n<network id> per network (not reachable from this machine). The API's
  SSH keys go to root; user_data (#cloud-config: ssh_authorized_keys, write_files,
  packages, package_update/upgrade, runcmd, hostname; or a #! script) runs on first boot,
  other keys are ignored and named in /var/log/cloud-init-output.log. Packages come
  through the apt proxy on 198.51.100.1:3142 (apt-cacher-ng behind a forwarder that
  serializes index requests and injects the "apt" faults); there is no route outside. Images:
  debian-11/12/13 are debootstrapped once into --hosts-cache (other system images boot
  debian-12); snapshots copy the machine's disk. Start removes leftovers of a killed
  run; SIGTERM powers the machines off cleanly. One such localcloud per machine.

exit status: 0 after SIGINT/SIGTERM (state is flushed), 1 when it cannot start (port in
use, state directory unusable), 2 for bad arguments; errors are one line on stderr."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m localcloud",
                     description="localcloud: a local Hetzner Cloud API (v1).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve", help="serve the API (python -m localcloud serve --help for the manual)",
        description=SERVE_DESCRIPTION, epilog=SERVE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8700, help="port (default 8700; 0 picks a free one)")
    serve.add_argument("--state", type=Path, default=None, metavar="DIR",
                       help="state directory (SQLite file localcloud.sqlite3 in it); the cloud, its ids and "
                            "running actions survive restarts. Default: memory only")
    serve.add_argument("--token", type=_token, default=os.environ.get("LOCALCLOUD_TOKEN", DEFAULT_TOKEN),
                       help=f"read-write API token (default {DEFAULT_TOKEN!r} or $LOCALCLOUD_TOKEN)")
    serve.add_argument("--readonly-token", type=_token, default=DEFAULT_READONLY_TOKEN,
                       help=f"read-only API token: GET only (default {DEFAULT_READONLY_TOKEN!r})")
    serve.add_argument("--profile", choices=sorted(PROFILES), default="fast",
                       help="action latency profile: fast (tests, default; ~0.05-0.2 s per action) or "
                            "realistic (timings observed on the real service, e.g. create_server 12 s)")
    serve.add_argument("--time-scale", type=_time_scale, default=1.0, metavar="FACTOR",
                       help="multiply every action duration (default 1; 0: actions finish by the next "
                            "request or within 50 ms)")
    serve.add_argument("--rate-limit", type=_rate_limit, default=3600, metavar="N",
                       help="requests per hour; the budget starts full and refills N/3600 per second "
                            "(default 3600, the real API's)")
    serve.add_argument("--limit", type=_limit, action="append", default=[], metavar="NAME=N",
                       help=f"project limit (resource_limit_exceeded beyond it), repeatable; names: "
                            f"{', '.join(DEFAULT_LIMITS)}")
    serve.add_argument("--faults", default=None, metavar="JSON|@FILE",
                       help="fault injection document, see below")
    serve.add_argument("--seed", type=int, default=None, help="random seed for fault injection")
    serve.add_argument("--hosts", choices=("none", "nspawn"), default="none",
                       help="none: API only (default); nspawn: servers are real Debian machines (root)")
    serve.add_argument("--hosts-cache", type=Path, default=Path("/var/cache/localcloud"), metavar="DIR",
                       help="with --hosts nspawn: image templates (DIR/templates) and the apt proxy's package "
                            "cache (DIR/apt), kept between runs (default /var/cache/localcloud)")
    serve.add_argument("--port-file", type=Path, default=None, metavar="FILE",
                       help="write {\"port\", \"pid\", \"endpoint\"} here once listening")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        parse(args.faults)
    except FaultSpecError as exc:
        print(f"localcloud: bad --faults: {exc}", file=sys.stderr)
        return 2
    if args.token == args.readonly_token:
        print("localcloud: --token and --readonly-token must differ", file=sys.stderr)
        return 2
    limits = dict(DEFAULT_LIMITS)
    limits.update(dict(args.limit))
    settings = Settings(host=args.host, port=args.port, state_dir=args.state, token=args.token,
                        readonly_token=args.readonly_token, profile=args.profile, time_scale=args.time_scale,
                        rate_limit=args.rate_limit, limits=limits, faults=args.faults, seed=args.seed,
                        hosts=args.hosts)
    if settings.hosts == "nspawn":
        from localcloud.hosts.system import why_unsupported

        reason = why_unsupported()
        if reason is not None:
            print(f"localcloud: --hosts nspawn: {reason}; use --hosts none for the API alone", file=sys.stderr)
            return 1
    return serve(settings, args.port_file, args.hosts_cache)


def serve(settings: Settings, port_file: Path | None, hosts_cache: Path | None = None) -> int:
    import asyncio
    import socket
    import sqlite3

    from localcloud.app import build_app
    from localcloud.cloud import Cloud

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        family = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
        sock.listen(128)  # connections queue from now on, so the port file never names a closed port
    except OSError as exc:
        print(f"localcloud: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}; "
              "choose another --port or --host", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    try:
        cloud = Cloud(settings)
    except (OSError, sqlite3.Error) as exc:
        print(f"localcloud: cannot use state directory {settings.state_dir}: {exc}", file=sys.stderr)
        return 1
    if settings.hosts == "nspawn":
        failure = _start_hosts(cloud, hosts_cache or Path("/var/cache/localcloud"))
        if failure is not None:
            print(f"localcloud: cannot start real hosts: {failure}", file=sys.stderr)
            return 1
    storage = _start_objectstorage(cloud)
    if isinstance(storage, str):
        print(f"localcloud: cannot start Object Storage: {storage}", file=sys.stderr)
        _stop_hosts(cloud)
        return 1
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    endpoint = f"http://{host}:{port}/v1"
    if port_file is not None:
        try:
            port_file.parent.mkdir(parents=True, exist_ok=True)
            port_file.write_text(json.dumps({"port": port, "pid": os.getpid(), "endpoint": endpoint}))
        except OSError as exc:
            print(f"localcloud: cannot write --port-file {port_file}: {exc}", file=sys.stderr)
            return 1
    print(f"localcloud serving {endpoint} (profile {settings.profile}, time scale {settings.time_scale}, "
          f"state {settings.state_dir or 'in memory'})", flush=True)
    print(f"  export HCLOUD_ENDPOINT={endpoint} HCLOUD_TOKEN={settings.token}", flush=True)
    print(f"localcloud: Object Storage {storage.endpoint} (S3; CA {storage.ca_file}; "
          "credentials: GET /_localcloud/objectstorage)", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run(build_app(cloud), sock))
    finally:
        try:
            _stop_hosts(cloud)  # first: the machines' last uploads (WAL archiving on shutdown) still land
        finally:
            storage.stop()  # then the buckets are saved for the next start
    return 0


def _start_objectstorage(cloud: object) -> ObjectStorage | str:
    """The S3 stand-in for Hetzner Object Storage: on the public bridge's 198.51.100.1:443 with
    real machines (they reach it as the internet), else on loopback. It, or why it failed."""
    from localcloud.cloud import Cloud
    from localcloud.config import ADMIN_ADDRESS
    from localcloud.objectstorage import HTTPS_PORT, ObjectStorage

    assert isinstance(cloud, Cloud)
    state = cloud.settings.state_dir
    real = cloud.settings.hosts == "nspawn"
    try:
        storage = ObjectStorage(state / "objectstorage" if state is not None else None,
                                ADMIN_ADDRESS if real else "127.0.0.1", HTTPS_PORT if real else 0)
        storage.start()
    except (OSError, ValueError) as exc:
        return f"{exc} (another Object Storage on port 443 of {ADMIN_ADDRESS}?)" if real else str(exc)
    cloud.objectstorage = storage.describe()
    return storage


def _start_hosts(cloud: object, cache: Path) -> str | None:
    """--hosts nspawn: remove leftovers, public bridge, apt proxy, the debian-12 template (built
    once, about a minute), then machines for stored servers. None, or why it failed."""
    from localcloud.api.restart import resume_machines
    from localcloud.cloud import Cloud
    from localcloud.hosts.backend import DEFAULT_DATA, Hosts
    from localcloud.hosts.jobs import NspawnMachines
    from localcloud.hosts.system import HostError

    assert isinstance(cloud, Cloud)
    state = cloud.settings.state_dir
    hosts = Hosts(data_dir=state / "hosts" if state is not None else DEFAULT_DATA, cache_dir=cache)
    hosts.proxy.faults = lambda: cloud.faults.apt  # read per request: PUT /_localcloud/faults applies at once
    hosts.proxy.seed = cloud.settings.seed
    try:
        hosts.start(keep_disks=state is not None)
        print(f"localcloud: real hosts: public bridge lc-pub ({', '.join(hosts.usable_pools)}), apt proxy "
              f"{hosts.proxy.url}", flush=True)
        template = hosts.template()
        print(f"localcloud: image template {template.name} {'built' if template.built else 'cached'} "
              f"({template.seconds:.1f} s, {template.path})", flush=True)
    except (HostError, OSError) as exc:
        hosts.stop()
        return str(exc)
    cloud.machines = NspawnMachines(hosts)
    with cloud.store.lock:
        resume_machines(cloud)
    return None


def _stop_hosts(cloud: object) -> None:
    """Power every machine off cleanly and remove the bridges, namespaces and mounts."""
    from localcloud.cloud import Cloud
    from localcloud.hosts.jobs import NspawnMachines
    from localcloud.machines import NoMachines

    assert isinstance(cloud, Cloud)
    machines = cloud.machines
    if not isinstance(machines, NspawnMachines):
        return
    cloud.machines = NoMachines()
    cut = machines.stop()
    print(f"localcloud: machines powered off{f' (power cut: {cut})' if cut else ''}", flush=True)


async def _run(app: object, sock: object) -> None:
    import asyncio
    import signal
    import socket

    from aiohttp import web

    assert isinstance(app, web.Application) and isinstance(sock, socket.socket)
    from localcloud.app import Runner

    runner = Runner(app, access_log=None)  # the HTTP layer's own errors in the API's format
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
