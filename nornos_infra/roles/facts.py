"""Facts the roles need that pyinfra 3.10 does not ship."""

from __future__ import annotations

from typing import Any

from pyinfra.api.facts import FactBase


class InContainer(FactBase[bool]):
    """True inside a container (localcloud's nspawn machines): vm.* sysctls and the clock are not ours."""

    def command(self) -> str:
        return "systemd-detect-virt --container >/dev/null 2>&1 && echo yes || echo no"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[0].strip() == "yes"


class FilesystemType(FactBase[str]):
    """The filesystem on a block device ("" when blank, None when the device is missing)."""

    def command(self, device: str) -> str:
        # always some output: pyinfra turns an empty output into the fact's default (None)
        return f"test -b {device} || {{ echo MISSING; exit 0; }}; echo \"fs:$(blkid -o value -s TYPE {device})\""

    def process(self, output: list[str]) -> Any:
        text = "\n".join(output).strip()
        return None if text == "MISSING" else text.removeprefix("fs:")


class MemoryMb(FactBase[int]):
    """MemTotal in MiB (the machine's; localcloud's containers see the host's, so roles cap it)."""

    def command(self) -> str:
        return "awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo"

    def process(self, output: list[str]) -> int:
        return int(output[0].strip()) if output else 0


class SshClientAddress(FactBase[str]):
    """The address this deploy's SSH session comes from (so a firewall change never locks it out)."""

    def command(self) -> str:
        return "echo ${SSH_CLIENT%% *}"

    def process(self, output: list[str]) -> str:
        return output[0].strip() if output else ""


class PostgresPasswordVerifier(FactBase[str]):
    """The SCRAM verifier stored for a role ("" when the role has none or does not exist)."""

    def command(self, role: str) -> str:
        return ("runuser -u postgres -- psql -tAq -c "
                f"\"SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '{role}'\" 2>/dev/null || true")

    def process(self, output: list[str]) -> str:
        return output[0].strip() if output else ""


class PostgresNames(FactBase[list[str]]):
    """Role or database names (``catalog``: pg_roles or pg_database), or None while the server
    is not running: the fact must not abort a deploy whose own first step starts it."""

    def command(self, catalog: str) -> str:
        column = {"pg_roles": "rolname", "pg_database": "datname"}[catalog]
        return (f"runuser -u postgres -- psql -tAq -c 'SELECT {column} FROM {catalog}' 2>/dev/null "
                "|| echo __not_running__")

    def process(self, output: list[str]) -> Any:
        names = [line.strip() for line in output if line.strip()]
        return None if "__not_running__" in names else names
