"""The machines' apt proxy: a small HTTP forwarder in front of apt-cacher-ng.

It listens where the machines' apt points (``Acquire::http::Proxy``) and passes every request
on to apt-cacher-ng, with two additions:

- One request at a time per index file (a path under ``/dists/`` that is not ``by-hash``).
  apt-cacher-ng 3.7 treats a volatile file (InRelease, Release, Packages, ...) whose download
  has not received its headers yet as stuck (its start time is still 0), so every concurrent
  request for it "moves it out of the way" by hard-linking the cache file to
  ``<file>.<unix seconds>``; two such moves in the same second collide (``link``: EEXIST) and
  that client gets "503 Error with cache data" (apt-get update warns and exits 0 with the
  index missing). Serialized, the next request finds the item complete and shares it.
  See docs/localcloud-internals.md ("The apt proxy").
- Injected faults (``faults.AptRule``: 5xx answers, stalls, transfers cut midway) for the
  machines' requests; clients in ``exempt`` (this machine: the template build) never get any.

Every reply closes its connection (apt reconnects), so a cut or a stall never leaves a
half-read response on a connection that apt would reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from localcloud.faults import AptRule
from localcloud.hosts.system import HostError, log

HEAD_LIMIT = 64 * 1024
CHUNK = 64 * 1024
HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "te", "trailer", "upgrade", "proxy-authorization"}
REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def serialized(path: str) -> bool:
    """Index files apt-cacher-ng treats as volatile; by-hash files are content-addressed (solid)."""
    return "/dists/" in path and "/by-hash/" not in path


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path or "/"

    def upstream_bytes(self) -> bytes:
        lines = [f"{self.method} {self.target} {self.version}"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in HOP_BY_HOP]
        lines += ["Connection: close", "", ""]
        return "\r\n".join(lines).encode("latin-1") + self.body


@dataclass
class Response:
    head: bytes  # status line and headers, rewritten to close the connection
    status: int
    length: int | None  # Content-Length; None: until the connection closes


def parse_request(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError(f"bad request line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"bad header line {line[:80]!r}")
            headers.append((name.strip(), value.strip()))
    return parts[0], parts[1], parts[2], headers


def parse_response_head(head: bytes, method: str) -> Response:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    kept, length = [lines[0]], None
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        if name.strip().lower() in HOP_BY_HOP:
            continue
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        kept.append(line)
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        length = 0
    text = "\r\n".join([*kept, "Connection: close", "", ""])
    return Response(text.encode("latin-1"), status, length)


def error_reply(status: int, message: str) -> bytes:
    body = f"localcloud apt proxy: {message}\n".encode()
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class AptFront:
    """The forwarder; ``start`` runs it on its own event loop in a daemon thread."""

    def __init__(self, address: str, port: int, upstream: tuple[str, int],
                 rules: Callable[[], Sequence[AptRule]] = lambda: (), exempt: Collection[str] = (),
                 seed: int | None = None, read_timeout: float = 120.0) -> None:
        self.address, self.port, self.upstream = address, port, upstream
        self.rules = rules
        self.exempt = set(exempt)
        self.rng = random.Random(seed)
        self.read_timeout = read_timeout
        self.stats: Counter[str] = Counter()
        self._locks: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 10) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name="apt-front", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise HostError(f"apt proxy front did not start within {timeout:.0f} s")
        if failure:
            self._thread.join()
            self._thread = None
            raise HostError(f"apt proxy front cannot listen on {self.address}:{self.port}: {failure[0]}")
        log.info("apt proxy front on %s -> apt-cacher-ng %s:%d", self.url, *self.upstream)

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(asyncio.start_server(
                self._serve, self.address, self.port, limit=HEAD_LIMIT, reuse_address=True))
        except OSError as exc:
            failure.append(exc)
            loop.close()
            ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop = None
        self._thread = None

    # -- one connection: one request ---------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader)
            if request is None:
                return
            self.stats["requests"] += 1
            peer = writer.get_extra_info("peername")
            rule = None if peer and peer[0] in self.exempt else self._pick(request.path)
            if rule is not None:
                self.stats[f"fault_{rule.fault}"] += 1
                log.info("apt proxy: injected %s for %s %s", rule.fault, peer[0] if peer else "?", request.path)
            if rule is not None and rule.fault == "error":
                writer.write(error_reply(rule.status, f"{rule.status} (injected fault)"))
                await writer.drain()
            elif rule is not None and rule.fault == "stall":
                await asyncio.sleep(rule.seconds)  # then closed below, without a word
            else:
                await self._forward(request, writer, cut=rule is not None)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return None
        try:
            method, target, version, headers = parse_request(head[:-4])
            lengths = [int(v) for k, v in headers if k.lower() == "content-length"]
        except ValueError:
            return None
        if any(k.lower() == "transfer-encoding" for k, _ in headers):
            return None  # apt never sends a request body in chunks
        body = await reader.readexactly(lengths[0]) if lengths else b""
        return Request(method, target, version, headers, body)

    def _pick(self, path: str) -> AptRule | None:
        for rule in self.rules():
            if rule.applies(path, self.rng):
                return rule
        return None

    async def _forward(self, request: Request, writer: asyncio.StreamWriter, cut: bool) -> None:
        if not serialized(request.path):
            await self._exchange(request, writer, cut)
            return
        lock = self._locks.setdefault(request.path, asyncio.Lock())
        if lock.locked():
            self.stats["waited"] += 1
        async with lock:
            self.stats["serialized"] += 1
            await self._exchange(request, writer, cut)

    async def _exchange(self, request: Request, writer: asyncio.StreamWriter, cut: bool) -> None:
        """Ask apt-cacher-ng and relay its answer; a cut stops relaying at a random point but
        reads the answer to its end, so apt-cacher-ng finishes (and keeps) the file."""
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.upstream, limit=HEAD_LIMIT),
                                                          10)
        except (OSError, TimeoutError) as exc:
            self.stats["upstream_errors"] += 1
            writer.write(error_reply(502, f"apt-cacher-ng unreachable: {exc}"))
            await writer.drain()
            return
        try:
            up_writer.write(request.upstream_bytes())
            await up_writer.drain()
            head = await asyncio.wait_for(up_reader.readuntil(b"\r\n\r\n"), self.read_timeout)
            response = parse_response_head(head[:-4], request.method)
            relay = Relay(writer, self._cut_point(response) if cut else None)
            await relay.send(response.head)
            await self._body(up_reader, response.length, relay)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                IndexError):
            self.stats["upstream_errors"] += 1
            reset(writer)
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await up_writer.wait_closed()

    def _cut_point(self, response: Response) -> int:
        """Bytes to send before the reset: inside the body when there is one, else inside the headers."""
        head = len(response.head)
        if response.length:
            return head + self.rng.randrange(response.length)
        if response.length == 0:
            return self.rng.randrange(1, head)
        return head + self.rng.randrange(CHUNK)

    async def _body(self, reader: asyncio.StreamReader, length: int | None, relay: Relay) -> None:
        left = length
        while left is None or left > 0:
            size = CHUNK if left is None else min(CHUNK, left)
            data = await asyncio.wait_for(reader.read(size), self.read_timeout)
            if not data:
                if left:
                    raise asyncio.IncompleteReadError(b"", left)
                break
            await relay.send(data)
            if left is not None:
                left -= len(data)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (linger 0), as a broken link or a dying proxy would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Relay:
    """Writes to the client until ``cut_at`` bytes went out, then resets the connection and
    swallows the rest (so that the upstream side can still be read to its end)."""

    def __init__(self, writer: asyncio.StreamWriter, cut_at: int | None) -> None:
        self.writer, self.cut_at, self.sent, self.gone = writer, cut_at, 0, False

    async def send(self, data: bytes) -> None:
        if self.gone:
            return
        if self.cut_at is not None and self.sent + len(data) >= self.cut_at:
            self.writer.write(data[:self.cut_at - self.sent])
            await self._flushed()
            reset(self.writer)
            self.gone = True
            return
        self.writer.write(data)
        self.sent += len(data)
        try:
            await self.writer.drain()
        except ConnectionError:
            self.gone = True  # the client left: apt-cacher-ng's answer is still read to its end

    async def _flushed(self, timeout: float = 5) -> None:
        """abort() drops what is still buffered: let the part before the cut go out first."""
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
        transport = self.writer.transport
        for _ in range(int(timeout / 0.01)):
            if transport.is_closing() or transport.get_write_buffer_size() == 0:
                return
            await asyncio.sleep(0.01)
