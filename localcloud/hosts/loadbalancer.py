"""Load balancers on real hosts: HAProxy in a network namespace of its own per load balancer.

A load balancer is a namespace ``lc-lb<id>`` with a veth on the public bridge (``lcb<id>``,
carrying its public IPv4 and IPv6; the other public pools on-link, as for servers) and one
veth into each attached network's bridge (``lcb<id>-<network id>``, its private IP). Nothing
forwards or NATs: HAProxy, a child of localcloud running in that namespace, terminates each
connection and opens its own to a target, so the load balancer reaches exactly what a host
with its addresses would reach.

HAProxy runs in master-worker mode (``-W``): its master is the recorded process (cleanup
kills it by PID; its workers leave when it dies). A changed configuration is checked with
``haproxy -c`` first, then loaded with SIGUSR2: the master starts new workers that take over
the listening sockets and lets the old ones finish their connections, so nothing is
refused. Health-check results survive a reload through HAProxy's server-state file.

:func:`render_config` (a pure function of :class:`LbSpec`) is the whole mapping of the API:
- ``tcp`` services: ``mode tcp``; ``http``: ``mode http`` with X-Forwarded-For/-Proto and,
  with sticky sessions, an inserted cookie; ``https``: localcloud has no certificates of
  its own (the API has no certificate resources), so TLS is terminated with a self-signed
  certificate made for the load balancer, and the targets get plain HTTP as on Hetzner;
  ``redirect_http`` adds a redirect on port 80.
- algorithms ``round_robin``/``least_connections``: ``balance roundrobin``/``leastconn``;
  ``proxyprotocol``: ``send-proxy`` (health checks too).
- health checks: ``check port inter fall rise`` and ``timeout check``; http checks send
  ``GET path`` (Host: domain) and expect the status codes and the response text.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from localcloud.hosts import network
from localcloud.hosts.system import (
    IFNAMSIZ,
    RUN_DIR,
    HostError,
    forget_process,
    kill,
    log,
    record_process,
    run,
    wait_gone,
)
from localcloud.machines import HealthCheck, LbNic, LbSpec, Service

LB_RUN_DIR = RUN_DIR / "lb"  # per load balancer: config, stats socket, server state, certificate, log
BALANCE = {"round_robin": "roundrobin", "least_connections": "leastconn"}
HEALTHY, UNHEALTHY, UNKNOWN = "healthy", "unhealthy", "unknown"
START_TIMEOUT = 15.0


# -- names ------------------------------------------------------------------------------------
def netns(lb_id: int) -> str:
    return f"lc-lb{lb_id}"


def public_veth(lb_id: int) -> str:
    name = f"lcb{lb_id}"
    if len(name) > IFNAMSIZ:
        raise HostError(f"load balancer id {lb_id} is too large for an interface name")
    return name


def private_veth(lb_id: int, network_id: int) -> str:
    name = f"lcb{lb_id}-{network_id}"
    if len(name) <= IFNAMSIZ:
        return name
    return "lcb" + hashlib.sha1(f"{lb_id}-{network_id}".encode()).hexdigest()[:12]


def process_name(lb_id: int) -> str:
    return f"lb-{lb_id}"


def lb_dir(lb_id: int) -> Path:
    return LB_RUN_DIR / str(lb_id)


# -- the HAProxy configuration ------------------------------------------------------------------
def quote(text: str) -> str:
    """A double-quoted HAProxy argument (no environment expansion, control characters escaped)."""
    out = []
    for ch in text:
        if ch in '\\"$#\'':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _addr(ip: str, port: int) -> str:
    return f"ipv6@{ip}:{port}" if ipaddress.ip_address(ip).version == 6 else f"{ip}:{port}"


def status_regex(codes: Sequence[str]) -> str:
    """The API's status codes (200, 2??, 3*) as one anchored regex: ? one digit, * any."""
    alternatives = [c.replace("?", "[0-9]").replace("*", "[0-9]*") for c in codes]
    return "^(" + "|".join(alternatives) + ")$"


def _cookie_value(name: str) -> str:
    """A stable cookie value per target (its name would show addresses to clients)."""
    return hashlib.sha1(name.encode()).hexdigest()[:10]


def _health_lines(hc: HealthCheck) -> list[str]:
    if hc.protocol != "http":
        return []  # a plain connect check
    send = f"http-check send meth GET uri {quote(hc.path)}"
    send += f" ver HTTP/1.1 hdr Host {quote(hc.domain)}" if hc.domain else " ver HTTP/1.0"
    lines = ["option httpchk", send]
    if hc.status_codes:
        lines.append(f"http-check expect rstatus {quote(status_regex(hc.status_codes))}")
    if hc.response:
        lines.append(f"http-check expect string {quote(hc.response)}")
    return lines


def _service(spec: LbSpec, svc: Service, cert: Path | None) -> list[str]:
    http = svc.protocol in ("http", "https")
    tls = f" ssl crt {quote(str(cert))} alpn h2,http/1.1" if svc.protocol == "https" and cert else ""
    lines = [f"listen svc-{svc.listen_port}", f"mode {'http' if http else 'tcp'}"]
    lines += [f"bind {_addr(a, svc.listen_port)}{tls}" for a in spec.addresses]
    lines.append(f"balance {BALANCE.get(spec.algorithm, 'roundrobin')}")
    if http:
        lines += ["option forwardfor",
                  f"http-request set-header X-Forwarded-Proto {'https' if svc.protocol == 'https' else 'http'}",
                  f"timeout http-keep-alive {svc.timeout_idle}s"]
        if svc.sticky_sessions:
            lines.append(f"cookie {quote(svc.cookie_name)} insert indirect nocache maxlife {svc.cookie_lifetime}s")
    hc = svc.health
    lines += _health_lines(hc)
    check = f"default-server check port {hc.port} inter {hc.interval}s fall {hc.retries} rise {hc.retries}"
    if hc.tls:
        check += " check-ssl verify none"
    if svc.proxyprotocol:
        check += " send-proxy check-send-proxy"
    lines += [check, f"timeout check {hc.timeout}s"]
    for t in spec.targets:
        cookie = f" cookie {_cookie_value(t.name)}" if http and svc.sticky_sessions else ""
        lines.append(f"server {t.name} {_addr(t.ip, svc.destination_port)}{cookie}")
    return [lines[0]] + ["    " + line for line in lines[1:]]


def render_config(spec: LbSpec, workdir: Path, cert: Path | None = None) -> str:
    """HAProxy's configuration for ``spec``; ``workdir`` holds the stats socket and server
    state, ``cert`` is the PEM for https services."""
    out = [
        f"# localcloud load balancer {spec.lb_id}: generated, rewritten on every change",
        "global",
        "    nbthread 1",
        f"    stats socket {quote(str(workdir / 'stats.sock'))} mode 600 level admin expose-fd listeners",
        f"    server-state-file {quote(str(workdir / 'server-state'))}",
        "    hard-stop-after 30s",  # old workers after a reload: their connections get this long
        "",
        "defaults",
        "    timeout connect 5s",
        "    timeout client 15m",
        "    timeout server 15m",
        "    retries 3",
        "    option redispatch",  # a refused connection is retried on another target
        "    load-server-state-from-file global",
    ]
    for svc in spec.services:
        out += ["", *_service(spec, svc, cert)]
    listened = {s.listen_port for s in spec.services}
    if any(s.protocol == "https" and s.redirect_http for s in spec.services) and 80 not in listened:
        out += ["", "frontend redirect-80", "    mode http"]
        out += [f"    bind {_addr(a, 80)}" for a in spec.addresses]
        out.append("    http-request redirect scheme https code 301")
    return "\n".join(out) + "\n"


def check_config(path: Path) -> None:
    proc = run(["haproxy", "-c", "-q", "-f", path], check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "ALERT" in ln] or ["no output"]
        raise HostError(f"HAProxy refused the configuration {path}: {lines[0].strip()}")


def make_certificate(path: Path, common_name: str, addresses: Iterable[str]) -> None:
    """A self-signed certificate and its key in one PEM (https services: localcloud has no
    real certificates)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key, crt = path.with_suffix(".key"), path.with_suffix(".crt")
    san = ",".join(f"IP:{a}" for a in addresses) or f"DNS:{common_name}"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", crt, "-days", "3650", "-subj", f"/CN={common_name}", "-addext",
         f"subjectAltName={san}"])
    path.write_text(crt.read_text() + key.read_text())
    path.chmod(0o600)
    key.unlink()
    crt.unlink()


# -- health from HAProxy's statistics ------------------------------------------------------------
def parse_stats(text: str) -> dict[int, dict[str, str]]:
    """``show stat`` CSV -> listen port -> target name -> healthy/unhealthy/unknown."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("#"):
        return {}
    header = lines[0].lstrip("# ").split(",")
    out: dict[int, dict[str, str]] = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        px, sv = row.get("pxname", ""), row.get("svname", "")
        if not px.startswith("svc-") or sv in ("FRONTEND", "BACKEND", ""):
            continue
        status, check = row.get("status", ""), row.get("check_status", "")
        if status.startswith("DOWN") or status.startswith("MAINT"):
            health = UNHEALTHY
        elif status.startswith(("UP", "NOLB", "DRAIN")) and check not in ("", "INI"):
            health = HEALTHY
        else:
            health = UNKNOWN  # not checked yet (servers start UP, before their first check)
        with contextlib.suppress(ValueError):
            out.setdefault(int(px[4:]), {})[sv] = health
    return out


def ask(sock_path: Path, command: str, timeout: float = 2) -> str:
    """One command on HAProxy's stats socket; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _worker_pid(sock_path: Path) -> int | None:
    try:
        info = ask(sock_path, "show info", timeout=1)
    except OSError:
        return None
    for line in info.splitlines():
        if line.startswith("Pid:"):
            return int(line.split(":", 1)[1])
    return None


# -- the namespace and its links ------------------------------------------------------------------
def _host_links(lb_id: int) -> list[str]:
    prefix = f"localcloud load balancer {lb_id} "
    return [str(link["ifname"]) for link in network._links() if str(link.get("ifalias", "")).startswith(prefix)]


def remove_netns(lb_id: int) -> None:
    """The namespace, its links (their host-side peers too) and any process left in it."""
    ns = netns(lb_id)
    for name in _host_links(lb_id):
        run(["ip", "link", "del", name], check=False)
    if run(["ip", "netns", "pids", ns], check=False).returncode == 0:
        pids = [int(p) for p in run(["ip", "netns", "pids", ns], check=False).stdout.split() if p.isdigit()]
        for pid in pids:
            kill(pid)
        wait_gone(pids, 5)
        run(["ip", "netns", "del", ns], check=False)


def _make_netns(lb_id: int) -> None:
    ns = netns(lb_id)
    remove_netns(lb_id)  # whatever an earlier attempt left
    run(["ip", "netns", "add", ns])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


def _set_public(lb_id: int, ipv4: str | None, ipv6: str | None, pools: Sequence[str]) -> None:
    network.plug_public(netns(lb_id), public_veth(lb_id), f"localcloud load balancer {lb_id} public", ipv4,
                        f"{ipv6}/64" if ipv6 is not None else None, pools)


def _attach(lb_id: int, nic: LbNic) -> None:
    ns, host, inner = netns(lb_id), private_veth(lb_id, nic.network_id), f"n{nic.network_id}"
    if network.link_exists(host):
        run(["ip", "link", "del", host])
    with network.BRIDGES_LOCK:  # the bridge must not be removed as unused before our port joins it
        bridge = network.ensure_network_bridge(nic.network_id)
        run(["ip", "link", "add", host, "type", "veth", "peer", "name", inner, "netns", ns])
        run(["ip", "link", "set", host, "alias", f"localcloud load balancer {lb_id} network {nic.network_id}"])
        run(["ip", "link", "set", host, "master", bridge, "up"])
    prefix = ipaddress.ip_network(nic.ip_range, strict=False).prefixlen
    run(["ip", "-n", ns, "addr", "add", f"{nic.ip}/{prefix}", "dev", inner])
    run(["ip", "-n", ns, "link", "set", inner, "up"])


def _detach(lb_id: int, network_id: int) -> None:
    host = private_veth(lb_id, network_id)
    if network.link_exists(host):
        run(["ip", "link", "del", host], check=False)


# -- one load balancer ------------------------------------------------------------------------------
class Balancer:
    """One load balancer's namespace and HAProxy; :meth:`apply` makes them match a spec."""

    def __init__(self, lb_id: int) -> None:
        self.lb_id = lb_id
        self.dir = lb_dir(lb_id)
        self.proc: subprocess.Popen[bytes] | None = None
        self.config: str | None = None  # what the running HAProxy loaded
        self.public: tuple[str | None, str | None] | None = None  # None: namespace not made yet
        self.private: dict[int, LbNic] = {}

    @property
    def sock(self) -> Path:
        return self.dir / "stats.sock"

    @property
    def config_path(self) -> Path:
        return self.dir / "haproxy.cfg"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def apply(self, spec: LbSpec, pools: Sequence[str]) -> None:
        """Namespace, links and HAProxy for ``spec``: only what differs is changed, and HAProxy
        is reloaded only when its configuration text changed."""
        if self.public is None:
            _make_netns(self.lb_id)
            self.public = (None, None)
        if (spec.ipv4, spec.ipv6) != self.public:
            self.public = ("unknown", "unknown")  # half-made if this fails: the next apply redoes it
            _set_public(self.lb_id, spec.ipv4, spec.ipv6, pools)
            self.public = (spec.ipv4, spec.ipv6)
        wanted = {n.network_id: n for n in spec.private}
        for nid in [n for n in self.private if wanted.get(n) != self.private[n]]:
            _detach(self.lb_id, nid)
            del self.private[nid]
        for nid, nic in wanted.items():
            if nid not in self.private:
                _attach(self.lb_id, nic)
                self.private[nid] = nic
        self.dir.mkdir(parents=True, exist_ok=True)
        cert = None
        if any(s.protocol == "https" for s in spec.services):
            cert = self.dir / "certificate.pem"
            if not cert.exists():
                make_certificate(cert, f"load-balancer-{self.lb_id}.localcloud", spec.addresses)
        text = render_config(spec, self.dir, cert)
        if self.running() and text == self.config:
            return
        candidate = self.dir / "haproxy.cfg.new"
        candidate.write_text(text)
        check_config(candidate)  # a refused config leaves the running one in place
        candidate.replace(self.config_path)
        if self.running():
            self._reload()
        else:
            self._start()
        self.config = text

    def _start(self) -> None:
        self.stop_process()
        self.sock.unlink(missing_ok=True)
        (self.dir / "server-state").touch()
        out = (self.dir / "haproxy.log").open("ab")
        try:
            # ip netns exec execs HAProxy: the recorded PID is HAProxy's master
            self.proc = subprocess.Popen(["ip", "netns", "exec", netns(self.lb_id), "haproxy", "-W", "-db", "-f",
                                          str(self.config_path)], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            out.close()
        record_process(process_name(self.lb_id), self.proc.pid)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HostError(f"HAProxy of load balancer {self.lb_id} exited with {self.proc.returncode}: "
                                f"{self._log_tail()}")
            if _worker_pid(self.sock) is not None:
                return
            time.sleep(0.05)
        raise HostError(f"HAProxy of load balancer {self.lb_id} did not answer within {START_TIMEOUT:.0f} s")

    def _reload(self) -> None:
        assert self.proc is not None
        before = _worker_pid(self.sock)
        with contextlib.suppress(OSError):  # health results carry over to the new workers
            (self.dir / "server-state").write_text(ask(self.sock, "show servers state"))
        self.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            pid = _worker_pid(self.sock)
            if pid is not None and pid != before:
                return
            if self.proc.poll() is not None:
                raise HostError(f"HAProxy of load balancer {self.lb_id} exited on reload: {self._log_tail()}")
            time.sleep(0.05)
        raise HostError(f"HAProxy of load balancer {self.lb_id} did not reload within {START_TIMEOUT:.0f} s")

    def _log_tail(self) -> str:
        try:
            lines = (self.dir / "haproxy.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        alerts = [ln for ln in lines if "ALERT" in ln]
        return (alerts or lines or ["no output"])[-1].strip()

    def stats(self) -> dict[int, dict[str, str]]:
        return parse_stats(ask(self.sock, "show stat", timeout=1))

    def stop_process(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # the master stops its workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill(self.proc.pid)
                self.proc.wait()
        forget_process(process_name(self.lb_id))
        self.proc = None
        self.config = None

    def remove(self) -> None:
        """HAProxy stopped, namespace and links removed, run directory gone."""
        self.stop_process()
        remove_netns(self.lb_id)
        self.public = None
        self.private.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
        log.info("load balancer %s removed", self.lb_id)
