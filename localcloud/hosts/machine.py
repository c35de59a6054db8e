"""One machine: an overlay disk over its image, its own cgroup, and systemd-nspawn booting
it in the server's network namespace, in a loop that boots again after a reboot (exit 133).

Power as on Hetzner: ``shutdown`` asks systemd to power off (SIGTERM to nspawn makes it
send SIGRTMIN+3 to the machine's init) and waits; ``poweroff`` cuts power (SIGKILL to every
process of the machine's cgroup); ``reboot`` asks systemd to reboot (SIGINT to init, as
ctrl-alt-del); ``reset`` cuts power and boots again. A boot is complete when systemd says
so (``systemctl is-system-running --wait``: running or degraded) and sshd answers.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from localcloud.hosts.system import (
    CGROUP_GROUP,
    OVERLAY_SOURCE,
    HostError,
    cgroup_hierarchies,
    cgroup_pids,
    forget_process,
    kill,
    kill_cgroup,
    log,
    netns_name,
    record_process,
    remove_cgroup_tree,
    run,
    umount,
)

REBOOT_EXIT = 133  # systemd-nspawn's exit status when the machine asked for a reboot


class Machine:
    def __init__(self, server_id: int, disk: Path, hostname: str, ssh_address: str | None = None) -> None:
        self.server_id = server_id
        self.name = netns_name(server_id)
        self.dir = disk
        self.hostname = hostname
        self.ssh_address = ssh_address  # public IPv4 to check sshd on, if any
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._restart = False
        self.boots = 0
        self.last_exit: int | None = None
        # run once per boot when it is complete (the hosts backend exposes volumes): by whoever
        # sees the boot complete first, the boot loop's watcher or a caller of wait_ready
        self.on_boot: Callable[[], None] | None = None
        self._hook_lock = threading.Lock()
        self._hooked = 0

    # -- disk ------------------------------------------------------------------------------
    @property
    def merged(self) -> Path:
        return self.dir / "merged"

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    def mounted(self) -> bool:
        return os.path.ismount(self.merged)

    def mount(self, lowers: list[Path]) -> None:
        """Mount the overlay (upper and work dirs kept: the disk's content) over ``lowers``."""
        for sub in ("upper", "work", "merged"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "disk.json").write_text(json.dumps({"lowers": [str(p) for p in lowers]}))
        if self.mounted():
            return
        opts = f"lowerdir={':'.join(str(p) for p in lowers)},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}"
        run(["mount", "-t", "overlay", f"{OVERLAY_SOURCE}{self.server_id}", "-o", opts, self.merged])

    def lowers(self) -> list[Path]:
        try:
            return [Path(p) for p in json.loads((self.dir / "disk.json").read_text())["lowers"]]
        except (OSError, ValueError, KeyError):
            return []

    def unmount(self) -> None:
        if self.mounted():
            umount(self.merged)

    def wipe(self) -> None:
        """Unmount and forget the disk's content (rebuild, destroy)."""
        if self.running():
            raise HostError(f"machine {self.name} is running")
        self.unmount()
        for sub in ("upper", "work"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)

    # -- cgroups ---------------------------------------------------------------------------
    def cgroups(self) -> list[Path]:
        return [h / CGROUP_GROUP / self.name for h in cgroup_hierarchies()]

    def _prepare_cgroups(self) -> None:
        for cg in self.cgroups():
            if cg.is_dir():
                kill_cgroup(cg)
                remove_cgroup_tree(cg, keep_root=True)  # nspawn leaves payload/init.scope behind
            cg.mkdir(parents=True, exist_ok=True)

    # -- power -----------------------------------------------------------------------------
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _command(self) -> list[str]:
        joins = "; ".join(f"echo $$ > {shlex.quote(str(cg / 'cgroup.procs'))}" for cg in self.cgroups())
        nspawn = ["systemd-nspawn", "--boot", "--quiet", "-D", str(self.merged), f"--machine={self.name}",
                  f"--hostname={self.hostname}", f"--network-namespace-path=/run/netns/{self.name}",
                  "--capability=CAP_NET_ADMIN", "--register=no", "--keep-unit", "--resolv-conf=off",
                  "--timezone=off", "--link-journal=no", "--console=read-only"]
        return ["sh", "-c", f"{joins}; exec {shlex.join(nspawn)}"]

    def _loop(self) -> None:
        env = {**os.environ, "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
        rc: int | None = None
        try:
            while True:
                self._prepare_cgroups()
                with self._lock, self.console_log.open("ab") as out:
                    if self._stopping:  # powered off between two boots
                        break
                    proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
                    self._proc = proc
                    self.boots += 1
                    boot = self.boots
                record_process(f"nspawn-{self.server_id}", proc.pid)
                if self.on_boot is not None:  # also after a reboot from inside the machine
                    threading.Thread(target=self._watch, args=(boot,), name=f"boot-{self.server_id}-{boot}",
                                     daemon=True).start()
                rc = proc.wait()
                for cg in self.cgroups():
                    kill_cgroup(cg)
                with self._lock:
                    self.last_exit = rc
                    if self._stopping:
                        break
                    if rc == REBOOT_EXIT or self._restart:
                        self._restart = False
                        continue
                    break
        except Exception:
            log.exception("boot loop of %s failed", self.name)
        finally:
            with self._lock:
                self._proc = None
            forget_process(f"nspawn-{self.server_id}")
            log.info("machine %s is off (nspawn exit %s)", self.name, rc)

    def start(self, timeout: float = 120) -> float:
        """Boot (if off) and wait until the boot is complete; seconds it took."""
        started = time.monotonic()
        if not self.mounted():
            raise HostError(f"machine {self.name} has no disk mounted")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                boot = self.boots
            else:
                self._stopping = self._restart = False
                boot = self.boots + 1
                self._thread = threading.Thread(target=self._loop, name=f"machine-{self.server_id}", daemon=True)
                self._thread.start()
        self.wait_ready(boot, timeout)
        return time.monotonic() - started

    def init_pid(self) -> int | None:
        """The machine's PID 1 as this machine sees it (NSpid ends in 1)."""
        for cg in self.cgroups()[:1]:
            for pid in cgroup_pids(cg):
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("NSpid:") and line.split()[-1] == "1" and len(line.split()) > 2:
                        return pid
        return None

    def wait_ready(self, boot: int, timeout: float = 120) -> None:
        """Wait for boot number ``boot`` to complete (systemd up, sshd answering)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                current, proc = self.boots, self._proc
            if current >= boot and proc is not None:
                break
            if not self.running():
                raise HostError(f"machine {self.name} stopped while booting{self._console_tail()}")
            if time.monotonic() > deadline:
                raise HostError(f"machine {self.name} did not boot within {timeout:.0f} s{self._console_tail()}")
            time.sleep(0.02)
        state = ""
        while time.monotonic() < deadline:
            if not self.running() or proc.poll() is not None:
                raise HostError(f"machine {self.name} stopped while booting (exit {proc.poll()})"
                                f"{self._console_tail()}")
            pid = self.init_pid()
            if pid is not None:
                left = max(1.0, deadline - time.monotonic())
                res = run(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--",
                           "systemctl", "is-system-running", "--wait"], check=False, timeout=left + 5)
                state = res.stdout.strip()
                if state in ("running", "degraded"):
                    if state == "degraded":
                        failed = run(["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "--",
                                      "systemctl", "--failed", "--no-legend", "--plain"], check=False).stdout
                        log.warning("machine %s booted degraded: %s", self.name, " ".join(failed.split()))
                    break
            time.sleep(0.05)
        else:
            raise HostError(f"machine {self.name} did not finish booting within {timeout:.0f} s (systemd: "
                            f"{state or 'not answering'})")
        if self.ssh_address:
            self._wait_ssh(deadline, timeout)
        self._after_boot()

    def _watch(self, boot: int) -> None:
        try:
            self.wait_ready(boot)
        except HostError as exc:
            log.debug("machine %s: boot %s not watched to its end: %s", self.name, boot, exc)

    def _after_boot(self) -> None:
        """Run ``on_boot`` once for the current boot; callers wait until it has run."""
        with self._hook_lock:
            with self._lock:
                current = self.boots
            if self.on_boot is None or self._hooked >= current:
                return
            self._hooked = current
            try:
                self.on_boot()
            except Exception as exc:
                log.warning("machine %s: after boot %s: %s", self.name, current, exc)

    def _wait_ssh(self, deadline: float, timeout: float) -> None:
        assert self.ssh_address is not None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.ssh_address, 22), timeout=2) as sock:
                    sock.settimeout(2)
                    if sock.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise HostError(f"sshd on {self.ssh_address} did not answer within {timeout:.0f} s")

    def _console_tail(self) -> str:
        try:
            lines = [ln for ln in self.console_log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return f"; console: {' | '.join(lines[-3:])[-400:]}" if lines else ""

    def _join(self, timeout: float) -> bool:
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def poweroff(self) -> None:
        """Cut the power: every process of the machine is killed at once."""
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is not None:
            kill(proc.pid)
        for cg in self.cgroups():
            kill_cgroup(cg)
        if not self._join(15):
            raise HostError(f"machine {self.name} did not stop")

    def shutdown(self, timeout: float = 60) -> bool:
        """Ask systemd to power off; True when it did within ``timeout``, else the power is cut."""
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is None:
            return self._join(5)
        proc.send_signal(signal.SIGTERM)  # nspawn sends SIGRTMIN+3 to init: a clean poweroff
        if self._join(timeout):
            return True
        log.warning("machine %s did not shut down within %.0f s: cutting power", self.name, timeout)
        self.poweroff()
        return False

    def reboot(self, timeout: float = 120) -> float:
        """A soft reboot (ctrl-alt-del for systemd); waits for the next boot to complete."""
        started = time.monotonic()
        with self._lock:
            boot = self.boots + 1
        pid = self.init_pid()
        if pid is None or not self.running():
            return self.start(timeout)
        os.kill(pid, signal.SIGINT)
        self.wait_ready(boot, timeout)
        return time.monotonic() - started

    def reset(self, timeout: float = 120) -> float:
        """Cut the power and boot again."""
        started = time.monotonic()
        if not self.running():
            return self.start(timeout)
        with self._lock:
            self._restart = True
            boot = self.boots + 1
            proc = self._proc
        if proc is not None:
            kill(proc.pid)  # the boot loop kills what is left in the cgroup, then boots again
        self.wait_ready(boot, timeout)
        return time.monotonic() - started

    def destroy(self) -> None:
        """Power off, unmount, remove the disk and the cgroups."""
        self.poweroff()
        self.unmount()
        shutil.rmtree(self.dir, ignore_errors=True)
        for cg in self.cgroups():
            remove_cgroup_tree(cg)
