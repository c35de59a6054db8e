"""Operations pyinfra lacks: a secret file whose content never appears in ``--diff`` or logs."""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from io import BytesIO
from typing import Any

from pyinfra.api.command import FileUploadCommand, StringCommand
from pyinfra.api.operation import operation
from pyinfra.context import host
from pyinfra.facts.files import File, Sha256File


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
