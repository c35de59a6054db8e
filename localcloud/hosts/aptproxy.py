"""apt-cacher-ng on the public bridge: the only process that talks to the Debian mirror.

It runs with its own configuration directory (the system's /etc/apt-cacher-ng and its
service stay untouched), bound to ADMIN_ADDRESS, in the foreground as a child recorded by
PID, so that stop (and cleanup after a killed run) ends exactly this process.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from localcloud.hosts.system import RUN_DIR, HostError, forget_process, kill, log, record_process, wait_gone

PORT = 3142
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
    """apt-cacher-ng bound to ``address:port``; cache in ``cache_dir`` (kept between runs)."""

    def __init__(self, address: str, cache_dir: Path, port: int = PORT) -> None:
        self.address = address
        self.port = port
        self.cache_dir = cache_dir
        self.run_dir = RUN_DIR / "apt-cacher-ng"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def mirror(self) -> str:
        """The Debian mirror through the proxy, for debootstrap."""
        return f"{self.url}/debian"

    def start(self, timeout: float = 20) -> None:
        conf = self.run_dir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (self.cache_dir / "cache").mkdir(parents=True, exist_ok=True)
        logs = self.cache_dir / "log"
        logs.mkdir(parents=True, exist_ok=True)
        (conf / "acng.conf").write_text(config_text(self.cache_dir / "cache", logs, self.run_dir, self.address,
                                                    self.port))
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
                with socket.create_connection((self.address, self.port), timeout=1):
                    log.info("apt proxy listening on %s (cache %s)", self.url, self.cache_dir)
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise HostError(f"apt-cacher-ng did not listen on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
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
