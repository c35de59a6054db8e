"""The machines' apt proxy: apt-cacher-ng, the only process that talks to the Debian mirror,
behind a forwarder on the public bridge (``aptfront.AptFront``: index requests one at a
time, injected apt faults).

apt-cacher-ng runs with its own configuration directory (the system's /etc/apt-cacher-ng and
its service stay untouched), bound to loopback only (the machines reach it through the
forwarder alone), in the foreground as a child recorded by PID, so that stop (and cleanup
after a killed run) ends exactly this process. The forwarder is a thread of localcloud's.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from localcloud.faults import AptRule
from localcloud.hosts.aptfront import AptFront
from localcloud.hosts.system import RUN_DIR, HostError, forget_process, kill, log, record_process, wait_gone

PORT = 3142  # where the machines' apt points (the forwarder)
CACHE_ADDRESS = "127.0.0.1"  # apt-cacher-ng itself: loopback only
CACHE_PORT = 3143
BACKEND = "http://deb.debian.org/debian/"
SECURITY_BACKEND = "http://deb.debian.org/debian-security/"
NAME = "apt-cacher-ng"


def config_text(cache_dir: Path, log_dir: Path, run_dir: Path, address: str, port: int) -> str:
    return "\n".join([
        f"CacheDir: {cache_dir}",
        f"LogDir: {log_dir}",
        "SupportDir: /usr/lib/apt-cacher-ng",
        f"Port: {port}",
        f"BindAddress: {address}",
        f"PidFile: {run_dir / 'apt-cacher-ng.pid'}",
        f"SocketPath: {run_dir / 'apt-cacher-ng.socket'}",
        "ConnectProto: v4",
        "ForeGround: 1",
        # requests for deb.debian.org (the machines' sources.list) and /debian (debootstrap)
        "Remap-debrep: deb.debian.org/debian ftp.debian.org/debian /debian ; file:backends_debian",
        "Remap-secdeb: security.debian.org security.debian.org/debian-security deb.debian.org/debian-security"
        " /debian-security ; file:backends_debian_security",
        "ReportPage: acng-report.html",
        "ExThreshold: 4",
        # a stalled mirror connection is dropped and retried instead of holding every
        # machine's apt-get behind it
        "NetworkTimeout: 30",
        "DlMaxRetries: 5",
        "PassThroughPattern: ^$",  # no CONNECT tunnels: nothing but Debian packages goes through
        "",
    ])


class AptProxy:
    """The apt proxy at ``address:port``; apt-cacher-ng's cache in ``cache_dir`` (kept between runs).

    ``faults`` gives the apt fault rules in force (localcloud's fault document, read per request).
    """

    def __init__(self, address: str, cache_dir: Path, port: int = PORT, cache_port: int = CACHE_PORT) -> None:
        self.address = address
        self.port = port
        self.cache_port = cache_port
        self.cache_dir = cache_dir
        self.run_dir = RUN_DIR / "apt-cacher-ng"
        self.proc: subprocess.Popen[bytes] | None = None
        self.faults: Callable[[], Sequence[AptRule]] = lambda: ()
        self.seed: int | None = None
        self.front: AptFront | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def mirror(self) -> str:
        """The Debian mirror through the proxy, for debootstrap."""
        return f"{self.url}/debian"

    def start(self, timeout: float = 20) -> None:
        self._start_cache(timeout)
        # this machine's own requests (debootstrap of a template) never get injected faults
        front = AptFront(self.address, self.port, (CACHE_ADDRESS, self.cache_port), rules=lambda: self.faults(),
                         exempt={self.address, CACHE_ADDRESS}, seed=self.seed)
        try:
            front.start()
        except HostError:
            self.stop()
            raise
        self.front = front

    def _start_cache(self, timeout: float) -> None:
        conf = self.run_dir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (self.cache_dir / "cache").mkdir(parents=True, exist_ok=True)
        logs = self.cache_dir / "log"
        logs.mkdir(parents=True, exist_ok=True)
        (conf / "acng.conf").write_text(config_text(self.cache_dir / "cache", logs, self.run_dir, CACHE_ADDRESS,
                                                    self.cache_port))
        (conf / "backends_debian").write_text(BACKEND + "\n")
        (conf / "backends_debian_security").write_text(SECURITY_BACKEND + "\n")
        out = (self.run_dir / "output.log").open("ab")
        try:
            self.proc = subprocess.Popen(["apt-cacher-ng", "-c", str(conf), "ForeGround=1"], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        except FileNotFoundError as exc:
            raise HostError("apt-cacher-ng is not installed (run scripts/hosts-deps.sh)") from exc
        finally:
            out.close()
        record_process(NAME, self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.run_dir / "output.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise HostError(f"apt-cacher-ng exited with {self.proc.returncode}: {' '.join(tail)}")
            try:
                with socket.create_connection((CACHE_ADDRESS, self.cache_port), timeout=1):
                    log.info("apt-cacher-ng listening on %s:%d (cache %s)", CACHE_ADDRESS, self.cache_port,
                             self.cache_dir)
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise HostError(f"apt-cacher-ng did not listen on {CACHE_ADDRESS}:{self.cache_port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.front is not None:
            self.front.stop()
            self.front = None
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                kill(self.proc.pid)
                wait_gone([self.proc.pid], 5)
                self.proc.wait()
        forget_process(NAME)
        self.proc = None
