"""Our own SSH clients verify host keys as pyinfra does: against the inventory's known_hosts
file, strictly. A local SSH server (paramiko) with a host key made by nornos_infra/host_keys.py
plays the server; paramiko (invoke kubeconfig) and OpenSSH (the reachability check) connect."""

from __future__ import annotations

import contextlib
import io
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from nornos_infra import host_keys
from nornos_infra.admin_key import ensure_keypair
from nornos_infra.ssh_access import SshAccess


class _Server(paramiko.ServerInterface):
    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
        def finish() -> None:  # after the reply to the request: exit 0, then close
            channel.send_exit_status(0)
            channel.shutdown_write()
            channel.close()

        threading.Timer(0.1, finish).start()
        return True


@pytest.fixture
def sshd() -> Iterator[tuple[int, host_keys.HostKey]]:
    """An SSH server on 127.0.0.1 whose host key is a pinned one; yields its port and key."""
    key = host_keys.generate()
    server_key = paramiko.Ed25519Key.from_private_key(io.StringIO(key.private_openssh))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            transport = paramiko.Transport(conn)
            transport.add_server_key(server_key)
            transports.append(transport)
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):  # a refused client
                transport.start_server(server=_Server())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], key
    stop.set()
    thread.join(timeout=5)
    for transport in transports:
        transport.close()
    listener.close()


def _known(tmp_path: Path, port: int, public: str) -> Path:
    path = tmp_path / "dev.known_hosts"
    path.write_text(host_keys.known_hosts([([f"[127.0.0.1]:{port}"], public)]))
    return path


def test_from_inventory_data_and_flags(tmp_path: Path) -> None:
    data = {"ssh_user": "root", "ssh_key": "~/k", "ssh_known_hosts_file": "/x/dev.known_hosts",
            "ssh_strict_host_key_checking": "yes"}
    access = SshAccess.from_data(data)
    assert access.key == Path.home() / "k" and access.known_hosts == Path("/x/dev.known_hosts")
    assert access.openssh_options() == ["-o", "UserKnownHostsFile=/x/dev.known_hosts", "-o",
                                        "StrictHostKeyChecking=yes", "-i", str(Path.home() / "k")]
    flagged = SshAccess.from_data(data, key=tmp_path / "mine", user="admin")
    assert (flagged.user, flagged.key) == ("admin", tmp_path / "mine")
    assert SshAccess.from_data({}).strict == "yes", "nothing said: strict"
    assert SshAccess.from_data({"ssh_strict_host_key_checking": "bogus"}).strict == "yes"


def test_paramiko_accepts_the_pinned_key_and_refuses_another(tmp_path: Path,
                                                             sshd: tuple[int, host_keys.HostKey]) -> None:
    port, key = sshd
    login = ensure_keypair(tmp_path / "id_ed25519").with_suffix("")
    access = SshAccess(key=login, known_hosts=_known(tmp_path, port, key.public_line))
    client = access.paramiko_client()
    client.connect("127.0.0.1", port=port, username="root", key_filename=str(login), timeout=10,
                   allow_agent=False, look_for_keys=False)
    client.close()

    other = SshAccess(key=login, known_hosts=_known(tmp_path, port, host_keys.generate().public_line))
    with pytest.raises(paramiko.BadHostKeyException):
        other.paramiko_client().connect("127.0.0.1", port=port, username="root", key_filename=str(login),
                                        timeout=10, allow_agent=False, look_for_keys=False)
    (tmp_path / "dev.known_hosts").write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        other.paramiko_client().connect("127.0.0.1", port=port, username="root", key_filename=str(login),
                                        timeout=10, allow_agent=False, look_for_keys=False)


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client here")
def test_openssh_accepts_the_pinned_key_and_refuses_another(tmp_path: Path,
                                                            sshd: tuple[int, host_keys.HostKey]) -> None:
    port, key = sshd
    login = ensure_keypair(tmp_path / "id_ed25519").with_suffix("")

    def ssh(public: str) -> subprocess.CompletedProcess[str]:
        access = SshAccess(key=login, known_hosts=_known(tmp_path, port, public))
        return subprocess.run(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p",
                               str(port), *access.openssh_options(), "root@127.0.0.1", "true"],
                              capture_output=True, text=True, timeout=60, check=False)

    assert ssh(key.public_line).returncode == 0
    refused = ssh(host_keys.generate().public_line)
    assert refused.returncode == 255 and "Host key verification failed" in refused.stderr
