"""The apt proxy's forwarder (localcloud/hosts/aptfront.py) in front of a stand-in for
apt-cacher-ng on loopback: requests pass unchanged, index files go one at a time, and the
"apt" faults of the fault document answer 5xx, stall or cut transfers for the machines."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from localcloud.faults import AptRule, FaultSpecError, parse
from localcloud.hosts.aptfront import AptFront, serialized

BODY = bytes(range(256)) * 800  # 200 KiB
INDEX = "http://deb.debian.org/debian/dists/bookworm/InRelease"
DEB = "http://deb.debian.org/debian/pool/main/c/curl/curl_7.88.1_amd64.deb"


class Upstream(ThreadingHTTPServer):
    """Answers every GET with BODY; counts requests in flight per path (apt-cacher-ng's race
    needs two at once for one index file)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.in_flight: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.finished = 0
        self.delay = 0.0


class Handler(BaseHTTPRequestHandler):
    server: Upstream
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        up = self.server
        with up.lock:
            up.seen.append((self.path, dict(self.headers.items())))
            up.in_flight[self.path] += 1
            up.most[self.path] = max(up.most[self.path], up.in_flight[self.path])
        left = False

        def leave() -> None:
            nonlocal left
            with up.lock:
                if not left:
                    up.in_flight[self.path] -= 1
                    left = True

        try:
            time.sleep(up.delay)
            if self.headers.get("If-Modified-Since"):
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            # no longer in flight once the last bytes go out: the client may have read them
            # and sent its next request before this thread runs again (a load-dependent race)
            leave()
            self.wfile.write(BODY)
            with up.lock:
                up.finished += 1
        finally:
            leave()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def front_for(upstream: Upstream, rules: list[AptRule] | None = None, exempt: tuple[str, ...] = ()) -> AptFront:
    port = upstream.server_address[1]
    assert isinstance(port, int)
    front = AptFront("127.0.0.1", 0, ("127.0.0.1", port), rules=lambda: rules or [], exempt=exempt, seed=7)
    front.start()
    return front


@pytest.fixture
def make_front(upstream: Upstream) -> Iterator[Any]:
    made: list[AptFront] = []

    def make(rules: list[AptRule] | None = None, exempt: tuple[str, ...] = ()) -> AptFront:
        made.append(front_for(upstream, rules, exempt))
        return made[-1]

    yield make
    for f in made:
        f.stop()


def get(front: AptFront, url: str, extra: str = "", method: str = "GET") -> tuple[bytes, bytes, bool]:
    """(head, body, reset) of one request in proxy form, as apt sends it."""
    request = f"{method} {url} HTTP/1.1\r\nHost: deb.debian.org\r\nUser-Agent: Debian APT-HTTP/1.3\r\n{extra}\r\n"
    data, reset = b"", False
    with socket.create_connection(("127.0.0.1", front.port), timeout=10) as sock:
        sock.sendall(request.encode())
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            reset = True
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body, reset


def test_requests_and_answers_pass_unchanged(upstream: Upstream, make_front: Any) -> None:
    front = make_front()
    head, body, reset = get(front, DEB, "Proxy-Connection: keep-alive\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == BODY and not reset
    assert b"Connection: close" in head
    path, headers = upstream.seen[0]
    assert path == DEB and headers["Connection"] == "close" and "Proxy-Connection" not in headers
    assert headers["User-Agent"] == "Debian APT-HTTP/1.3"
    head, body, _ = get(front, INDEX, "If-Modified-Since: Tue, 01 Dec 2026 10:00:00 GMT\r\n")
    assert head.startswith(b"HTTP/1.1 304") and body == b""


def test_index_files_go_one_at_a_time_packages_in_parallel(upstream: Upstream, make_front: Any) -> None:
    front = make_front()
    upstream.delay = 0.2
    results: list[bytes] = []

    def fetch(url: str) -> None:
        results.append(get(front, url)[1])

    threads = [threading.Thread(target=fetch, args=(url,)) for url in [INDEX] * 6 + [DEB] * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [BODY] * 10
    assert upstream.most["http://deb.debian.org/debian/dists/bookworm/InRelease"] == 1
    assert upstream.most[DEB] > 1
    assert front.stats["serialized"] == 6 and front.stats["waited"] >= 1


def test_which_paths_are_serialized() -> None:
    assert serialized("/debian/dists/bookworm/InRelease")
    assert serialized("/debian/dists/bookworm/main/binary-amd64/Packages.xz")
    assert not serialized("/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/0a1b")
    assert not serialized("/debian/pool/main/c/curl/curl_7.88.1_amd64.deb")


def test_an_error_fault_answers_5xx_without_asking_the_mirror(upstream: Upstream, make_front: Any) -> None:
    rule = AptRule(fault="error", status=502, times=1)
    front = make_front([rule])
    head, body, _ = get(front, INDEX)
    assert head.startswith(b"HTTP/1.1 502 Bad Gateway") and b"injected fault" in body
    assert upstream.seen == [] and rule.fired == 1
    assert get(front, INDEX)[1] == BODY  # times: 1


def test_a_stall_answers_nothing_then_closes(make_front: Any, upstream: Upstream) -> None:
    front = make_front([AptRule(fault="stall", seconds=0.5)])
    started = time.monotonic()
    head, body, _ = get(front, DEB)
    assert head == b"" and body == b"" and time.monotonic() - started >= 0.5
    assert upstream.seen == []


def test_a_cut_resets_midway_and_the_mirror_side_still_finishes(make_front: Any, upstream: Upstream) -> None:
    front = make_front([AptRule(fault="cut", rate=1.0)])
    head, body, reset = get(front, DEB)
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 204800" in head
    assert len(body) < len(BODY) and BODY.startswith(body) and reset
    deadline = time.monotonic() + 5
    while upstream.finished < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.finished == 1  # read to its end: apt-cacher-ng completes the file


def test_a_cut_without_a_body_cuts_the_headers(make_front: Any) -> None:
    front = make_front([AptRule(fault="cut")])
    head, body, _ = get(front, INDEX, "If-Modified-Since: Tue, 01 Dec 2026 10:00:00 GMT\r\n")
    assert b"\r\n\r\n" not in head + body and len(head) > 0


def test_rules_match_paths_in_order_and_spare_exempt_clients(make_front: Any) -> None:
    rules = [AptRule(fault="error", path="*.deb", status=500), AptRule(fault="error", status=503)]
    front = make_front(rules)
    assert get(front, DEB)[0].startswith(b"HTTP/1.1 500")
    assert get(front, INDEX)[0].startswith(b"HTTP/1.1 503")
    assert [r.fired for r in rules] == [1, 1]
    spared = make_front(rules, exempt=("127.0.0.1",))
    assert get(spared, DEB)[1] == BODY and rules[0].fired == 1


def test_a_rate_fires_on_about_that_share(make_front: Any) -> None:
    rule = AptRule(fault="error", rate=0.2)
    front = make_front([rule])
    codes = Counter(get(front, DEB)[0][9:12] for _ in range(200))
    assert 20 <= codes[b"503"] <= 60 and codes[b"503"] == rule.fired


def test_the_mirror_side_down_is_a_502() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    front = AptFront("127.0.0.1", 0, ("127.0.0.1", port))
    front.start()
    try:
        assert get(front, DEB)[0].startswith(b"HTTP/1.1 502")
    finally:
        front.stop()


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        front = AptFront("127.0.0.1", s.getsockname()[1], ("127.0.0.1", 9))
        with pytest.raises(Exception, match="cannot listen"):
            front.start()


# -- the "apt" kind of the fault document ------------------------------------------------------
def test_apt_rules_in_the_fault_document() -> None:
    doc = {"apt": [{"fault": "error", "rate": 0.1, "status": 503}, {"fault": "cut", "rate": 0.1, "path": "*.deb"},
                   {"fault": "stall", "seconds": 20, "times": 2}]}
    faults = parse(doc)
    assert [(r.fault, r.rate, r.path) for r in faults.apt] == [("error", 0.1, "*"), ("cut", 0.1, "*.deb"),
                                                              ("stall", 1.0, "*")]
    shown = faults.to_json()["apt"]
    assert shown[0] == {"fault": "error", "path": "*", "rate": 0.1, "times": None, "status": 503, "fired": 0}
    assert shown[2]["seconds"] == 20 and "status" not in shown[2]
    assert parse(faults.to_json()).to_json() == faults.to_json()  # what GET shows can be PUT back


@pytest.mark.parametrize("rule, message", [
    ({"rate": 0.1}, "need a fault"),
    ({"fault": "explode"}, "need a fault"),
    ({"fault": "error", "status": 404}, "5xx"),
    ({"fault": "cut", "rate": 2}, "between 0 and 1"),
    ({"fault": "stall", "seconds": -1}, "seconds"),
    ({"fault": "cut", "code": "x"}, "unknown keys"),
])
def test_bad_apt_rules_are_refused(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse({"apt": [rule]})
