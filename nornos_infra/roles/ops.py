"""Operations pyinfra lacks: a secret file whose content never appears in ``--diff`` or logs;
an apt update that cannot hang a deploy."""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

from pyinfra.api.command import FileUploadCommand, StringCommand
from pyinfra.api.operation import operation
from pyinfra.context import host
from pyinfra.facts.files import File, Sha256File
from pyinfra.facts.server import Date

APT_UPDATE_STAMP = "/var/lib/apt/periodic/update-success-stamp"  # where pyinfra's apt.update keeps it


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


@operation(is_idempotent=False)
def apt_update(cache_time: int = 6 * 3600, timeout: int = 120, attempts: int = 4) -> Generator[Any, None, None]:
    """``apt-get update`` unless it ran within ``cache_time`` seconds (as apt.update does), but
    bounded: an attempt that takes longer than ``timeout`` seconds is killed and retried.

    apt has no overall deadline; a mirror or proxy that cuts a transfer in the wrong place can
    leave apt-get waiting for ever (seen through apt-cacher-ng), and with it the whole deploy.
    """
    info = host.get_fact(File, path=APT_UPDATE_STAMP)
    date = host.get_fact(Date)
    stamp = info.get("mtime") if info else None
    if stamp is not None and date is not None:
        # both as naive UTC, as pyinfra's apt.update compares them
        now = datetime.fromtimestamp(date.timestamp(), UTC).replace(tzinfo=None)
        if stamp > now - timedelta(seconds=cache_time):
            host.noop("apt lists are fresh")
            return
    yield StringCommand(
        f"for attempt in $(seq {attempts}); do timeout -k 10 {timeout} apt-get update -q && exit 0;"
        f" echo \"apt-get update: attempt $attempt of {attempts} failed\" >&2; sleep 5; done; exit 1")
    yield StringCommand("mkdir", "-p", "/var/lib/apt/periodic")
    yield StringCommand("touch", APT_UPDATE_STAMP)
