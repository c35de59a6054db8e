"""localcloud throughput, latency and memory, measured against a real server process.

    .venv/bin/python benchmarks/localcloud_bench.py [--seconds 3] [--threads 4] [--servers 1000]

Starts its own ``python -m localcloud serve`` (port 0, temporary state directory, time scale 0,
a rate limit far above what the benchmark sends) and prints:

* requests per second for GET /locations, GET /ssh_keys (25 keys listed) and a POST+DELETE
  SSH key pair, from one client and from several threads (one HTTP session each);
* p50 and p99 latency per request kind, as the client sees it;
* the server's resident memory (VmRSS from /proc/<pid>/status) before and after creating
  1,000 servers with POST /servers (plain requests). Without a servers family it says so and
  measures 1,000 SSH keys instead.

It prints figures and never asserts timings: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    pid: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def side(self, method: str, path: str, body: object = None) -> dict[str, object]:
        resp = requests.request(method, f"http://127.0.0.1:{self.port}/_localcloud/{path}", json=body, timeout=30)
        resp.raise_for_status()
        result: dict[str, object] = resp.json()
        return result

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def start(state: Path, *extra: str) -> Server:
    port_file = state / "port.json"
    log = (state / "localcloud.log").open("wb")
    args = [sys.executable, "-m", "localcloud", "serve", "--port", "0", "--state", str(state / "db"),
            "--time-scale", "0", "--rate-limit", str(10**9), "--token", TOKEN, "--readonly-token", "bench-ro",
            "--port-file", str(port_file), *extra]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"localcloud exited with {proc.returncode}; see {state / 'localcloud.log'}")
        if port_file.exists():
            try:
                port = int(json.loads(port_file.read_text())["port"])
                requests.get(f"http://127.0.0.1:{port}/_localcloud/health", timeout=2).raise_for_status()
                return Server(proc, port, proc.pid)
            except (ValueError, KeyError, requests.RequestException):
                pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("localcloud did not start within 30 s")


def session() -> requests.Session:
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    return s


def public_key(i: int) -> str:
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + hashlib.sha256(f"bench-{i}".encode()).digest()
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} bench{i}"


# -- request kinds: each call does one unit of work and returns how many HTTP requests it sent ----
Kind = Callable[[requests.Session, str, int], int]


def get_locations(s: requests.Session, endpoint: str, i: int) -> int:
    s.get(f"{endpoint}/locations").raise_for_status()
    return 1


def list_ssh_keys(s: requests.Session, endpoint: str, i: int) -> int:
    s.get(f"{endpoint}/ssh_keys").raise_for_status()
    return 1


_counter = iter(range(10**9))
_counter_lock = threading.Lock()


def create_delete_ssh_key(s: requests.Session, endpoint: str, i: int) -> int:
    with _counter_lock:
        n = next(_counter) + 10_000
    resp = s.post(f"{endpoint}/ssh_keys", json={"name": f"tmp-{n}", "public_key": public_key(n)})
    resp.raise_for_status()
    s.delete(f"{endpoint}/ssh_keys/{resp.json()['ssh_key']['id']}").raise_for_status()
    return 2


KINDS: dict[str, Kind] = {
    "GET /locations": get_locations,
    "GET /ssh_keys (25 keys)": list_ssh_keys,
    "POST+DELETE /ssh_keys": create_delete_ssh_key,
}


@dataclass
class Result:
    requests: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds per unit of work
    elapsed: float = 0.0


def run(endpoint: str, kind: Kind, threads: int, seconds: float) -> Result:
    result = Result()
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker() -> None:
        s = session()
        kind(s, endpoint, 0)  # warm the connection
        sent, lat = 0, []
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            sent += kind(s, endpoint, 0)
            lat.append(time.perf_counter() - t0)
        with lock:
            result.requests += sent
            result.latencies += lat

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    result.elapsed = time.perf_counter() - started
    return result


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def throughput(server: Server, threads: int, seconds: float) -> None:
    s = session()
    for i in range(25):
        s.post(f"{server.endpoint}/ssh_keys", json={"name": f"key-{i}", "public_key": public_key(i)}).raise_for_status()
    print(f"\nthroughput and latency ({seconds:g} s per measurement; latency per unit of work, "
          "POST+DELETE is two requests)")
    print(f"{'request kind':<26}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'samples':>9}")
    for name, kind in KINDS.items():
        for n in (1, threads):
            r = run(server.endpoint, kind, n, seconds)
            print(f"{name:<26}{n:>8}{r.requests / r.elapsed:>10.0f}{pct(r.latencies, 0.5):>9.2f}"
                  f"{pct(r.latencies, 0.99):>9.2f}{len(r.latencies):>9}")


def servers_available(server: Server) -> bool:
    resp = session().post(f"{server.endpoint}/servers", json={})
    return resp.status_code not in (404, 405)


def memory(server: Server, count: int) -> None:
    s = session()
    server.side("DELETE", "requests")
    print(f"\nserver memory (VmRSS of pid {server.pid})")
    before = server.rss_mib()
    print(f"  before: {before:8.1f} MiB  ({server.side('GET', 'stats')['resources']})")
    if servers_available(server):
        what = "servers"
        # localcloud's public IPv4 pool is finite (as on the real cloud): when it runs out, the rest
        # of the servers are created IPv6-only
        locations = ["nbg1", "hel1", "fsn1"]
        ipv4 = True
        started = time.perf_counter()
        times = []
        for i in range(count):
            while True:
                body: dict[str, object] = {
                    "name": f"bench-{i:04d}", "server_type": "cx23", "image": "debian-12",
                    "location": locations[i % 3], "labels": {"bench": "yes", "n": str(i)}}
                if not ipv4:
                    body["public_net"] = {"enable_ipv4": False, "enable_ipv6": True}
                t0 = time.perf_counter()
                resp = s.post(f"{server.endpoint}/servers", json=body)
                times.append(time.perf_counter() - t0)
                if resp.status_code == 412 and ipv4 and "IPv4" in resp.text:
                    print(f"  public IPv4 pool exhausted after {i} servers; the rest are IPv6-only")
                    ipv4 = False
                    continue
                break
            if resp.status_code != 201:
                print(f"  POST /servers #{i} answered {resp.status_code}: {resp.text[:300]}")
                return
    else:
        what = "SSH keys"
        print("  the servers family is not implemented yet (POST /servers is not_found): measuring "
              f"{count} SSH keys instead; run again once localcloud/api/servers.py exists")
        started = time.perf_counter()
        times = []
        for i in range(count):
            t0 = time.perf_counter()
            s.post(f"{server.endpoint}/ssh_keys", json={"name": f"mem-{i}", "public_key": public_key(100_000 + i),
                                                        "labels": {"bench": "yes"}}).raise_for_status()
            times.append(time.perf_counter() - t0)
    took = time.perf_counter() - started
    time.sleep(0.3)  # let the 50 ms ticker finish the create actions
    after = server.rss_mib()
    stats = server.side("GET", "stats")
    print(f"  created {count} {what} in {took:.1f} s ({count / took:.0f}/s; POST p50 {pct(times, 0.5):.2f} ms, "
          f"p99 {pct(times, 0.99):.2f} ms)")
    print(f"  after:  {after:8.1f} MiB  ({stats['resources']}, actions running: {stats['actions_running']})")
    print(f"  growth: {after - before:8.1f} MiB  (~{(after - before) * 1024 / count:.1f} KiB per {what[:-1]}, "
          "including the request log and SQLite page cache)")
    t0 = time.perf_counter()
    s.get(f"{server.endpoint}/{'servers' if what == 'servers' else 'ssh_keys'}", params={"per_page": 50})
    print(f"  one list page with {count} {what} stored: {(time.perf_counter() - t0) * 1000:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement (default 3)")
    parser.add_argument("--threads", type=int, default=4, help="client threads for the parallel runs (default 4)")
    parser.add_argument("--servers", type=int, default=1000, help="servers to create for the memory figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="localcloud-bench-") as tmp:
        n = args.servers
        server = start(Path(tmp), "--limit", f"servers={n + 10}", "--limit", f"primary_ips={2 * n + 10}",
                       "--limit", f"ssh_keys={n + 100}")
        try:
            print(f"localcloud pid {server.pid} at {server.endpoint} (time scale 0, rate limit 10^9/h, "
                  f"SQLite state in {tmp}); python {sys.version.split()[0]}")
            print(f"server RSS at start: {server.rss_mib():.1f} MiB")
            throughput(server, args.threads, args.seconds)
            memory(server, n)
        finally:
            server.proc.terminate()
            server.proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
