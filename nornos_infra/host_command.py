"""One command on one inventory host, logged in as pyinfra logs in: the inventory's user and key,
the host key checked against the one pinned in its known_hosts file. For the on-demand tasks
(``invoke backup``, ``invoke restore``) that run a host's own scripts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from nornos_infra import inventory
from nornos_infra.errors import UserError
from nornos_infra.ssh_access import SshAccess


@dataclass(frozen=True)
class Outcome:
    status: int
    output: str  # stdout, then stderr


@dataclass(frozen=True)
class Result:
    """What a task ran on a host, as it prints it: ``<host>: <what>: done`` or ``FAILED (exit N)``,
    then the command's own output, indented."""

    host: str
    what: str
    status: int
    output: str

    def lines(self) -> list[str]:
        verdict = "done" if self.status == 0 else f"FAILED (exit {self.status})"
        return [f"{self.host}: {self.what}: {verdict}", *(f"  {line}" for line in self.output.splitlines())]


def run(host: inventory.Host, command: str, timeout: float, stdin: IO[bytes] | None = None) -> Outcome:
    """``command`` through bash on ``host``; ``stdin`` streamed to it when given (never kept here)."""
    import paramiko

    access = SshAccess.from_data(host.data)
    client = access.paramiko_client()
    try:
        client.connect(host.ssh_hostname, port=int(host.data.get("ssh_port") or 22), username=access.user,
                       timeout=10, allow_agent=access.key is None, look_for_keys=access.key is None,
                       key_filename=str(access.key) if access.key else None)
        channel_in, stdout, stderr = client.exec_command(command, timeout=timeout)
        if stdin is not None:
            while chunk := stdin.read(1 << 20):
                channel_in.write(chunk)
            channel_in.channel.shutdown_write()
        status = stdout.channel.recv_exit_status()
        output = (stdout.read() + stderr.read()).decode(errors="replace").strip()
    except paramiko.BadHostKeyException:
        raise UserError(f"{host.name} ({host.ssh_hostname}) presented a host key that is not the one pinned in "
                        f"{access.known_hosts}: refusing to connect (docs/RUNBOOK.md, 'Host keys')") from None
    except (paramiko.SSHException, OSError) as exc:
        raise UserError(f"cannot log in to {host.name} ({host.ssh_hostname}): {exc}") from None
    finally:
        client.close()
    return Outcome(status, output)
