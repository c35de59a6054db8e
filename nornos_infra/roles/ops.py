"""Operations pyinfra lacks: a secret file whose content never appears in ``--diff`` or logs;
apt updates and installs that converge through mirror and proxy faults (``apt_update``,
``apt_packages``; the shell they run is in ``nornos_infra/roles/aptsh.py``)."""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from io import BytesIO
from typing import Any

from pyinfra.api.command import FileUploadCommand, StringCommand
from pyinfra.api.facts import FactBase
from pyinfra.api.operation import operation
from pyinfra.context import host
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File, Sha256File

from nornos_infra.roles import aptsh


@operation()
def secret_file(path: str, content: str, mode: str = "600", user: str = "root",
                group: str = "root") -> Generator[Any, None, None]:
    """Upload ``content`` to ``path`` when its SHA-256 differs; only hashes are compared and shown.

    files.put/files.template print a diff of the content under ``--diff``; this never does.
    """
    wanted = hashlib.sha256(content.encode()).hexdigest()
    current = host.get_fact(Sha256File, path=path)
    info = host.get_fact(File, path=path)
    if current != wanted:
        yield FileUploadCommand(BytesIO(content.encode()), path)
    if current != wanted or not info or info.get("mode") != int(mode) or info.get("user") != user \
            or info.get("group") != group:
        yield StringCommand("chown", f"{user}:{group}", path)
        yield StringCommand("chmod", mode, path)


class AptLists(FactBase[dict[str, Any]]):
    """How old the update stamp is (seconds, None without one) and which Packages indexes or
    Release files of the configured sources are missing from /var/lib/apt/lists."""

    def command(self) -> str:
        return aptsh.lists_fact()

    def process(self, output: list[str]) -> dict[str, Any]:
        return aptsh.parse_lists_fact(output)


# whole apt-get update runs before giving up (see aptsh.py: apt's own retries hang after a cut)
UPDATE_ATTEMPTS = 20


def _who() -> str:
    """'<host>: <operation name>' for the scripts' messages (pyinfra interleaves hosts' output)."""
    meta = host.state.get_op_meta(host.current_op_hash) if host.current_op_hash else None
    names = ", ".join(sorted(meta.names)) if meta is not None and meta.names else "apt"
    return f"{host.name}: {names}"


@operation(is_idempotent=False)
def apt_update(cache_time: int = 6 * 3600, timeout: int = 120,
               attempts: int = UPDATE_ATTEMPTS) -> Generator[Any, None, None]:
    """``apt-get update`` unless it succeeded within ``cache_time`` seconds AND every index the
    sources name is there (the stamp alone is never trusted: it once stood over broken lists).

    A failed fetch fails the update (``APT::Update::Error-Mode=any``); the lists are checked
    after it; the stamp is written only after both, removed after a failure; up to
    ``attempts`` tries of at most ``timeout`` seconds each (a stalled proxy cannot hang it).
    """
    state = host.get_fact(AptLists) or {}
    age = state.get("age")
    if age is not None and age < cache_time and not state.get("missing"):
        host.noop("apt lists are fresh")
        return
    yield StringCommand(aptsh.update_script(_who(), cache_time, timeout, attempts))


@operation()
def apt_packages(packages: list[str], timeout: int = 900, attempts: int = 10,
                 update_attempts: int = UPDATE_ATTEMPTS, recommends: bool = True) -> Generator[Any, None, None]:
    """``apt-get install`` of the packages not installed yet, retried within a budget: lock
    waits and failed downloads are tried again; "no installation candidate" refreshes the lists
    once (``apt_update``'s way) and tries again; anything else fails at once, with apt's words.
    """
    installed = host.get_fact(DebPackages) or {}
    missing = [p for p in packages if p not in installed]
    if not missing:
        host.noop(f"installed: {', '.join(packages)}")
        return
    yield StringCommand(aptsh.install_script(_who(), missing, timeout, attempts, update_attempts,
                                             recommends=recommends))
