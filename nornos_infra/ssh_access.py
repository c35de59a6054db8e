"""How our own SSH clients log in, from the same inventory data pyinfra reads: user, key, and
host keys verified against the known_hosts file provision.py writes (``invoke kubeconfig``
with paramiko, the reachability check with OpenSSH), never trust on first use on a real cloud."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import paramiko

STRICT_VALUES = ("yes", "accept-new", "no", "off")


@dataclass(frozen=True)
class SshAccess:
    user: str = "root"
    key: Path | None = None
    known_hosts: Path | None = None
    strict: str = "yes"  # as pyinfra's ssh_strict_host_key_checking

    @classmethod
    def from_data(cls, data: Mapping[str, Any], key: Path | None = None, user: str | None = None) -> SshAccess:
        """From inventory data; ``key`` and ``user`` (command-line flags) win over it."""
        strict = str(data.get("ssh_strict_host_key_checking") or "yes")
        if strict not in STRICT_VALUES:
            strict = "yes"
        known = data.get("ssh_known_hosts_file")
        inventory_key = data.get("ssh_key")
        return cls(user=user or str(data.get("ssh_user") or "root"),
                   key=key or (Path(str(inventory_key)).expanduser() if inventory_key else None),
                   known_hosts=Path(str(known)).expanduser() if known else None, strict=strict)

    def openssh_options(self) -> list[str]:
        """ssh(1) arguments: put the caller's own ``-o`` before them (ssh keeps the first value)."""
        args: list[str] = []
        if self.known_hosts is not None:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        args += ["-o", f"StrictHostKeyChecking={'no' if self.strict == 'off' else self.strict}"]
        if self.key is not None:
            args += ["-i", str(self.key)]
        return args

    def paramiko_client(self) -> paramiko.SSHClient:
        """A client that knows the pinned keys and refuses unknown ones (accept-new: adds them)."""
        import paramiko

        client = paramiko.SSHClient()
        if self.known_hosts is not None and self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        policy: paramiko.MissingHostKeyPolicy = paramiko.RejectPolicy()
        if self.strict == "accept-new":
            policy = paramiko.AutoAddPolicy()
        elif self.strict in ("no", "off"):
            policy = paramiko.WarningPolicy()
        client.set_missing_host_key_policy(policy)
        return client
