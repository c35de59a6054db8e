"""PostgreSQL SCRAM-SHA-256 verifiers, made and checked here so that only verifiers, never
passwords, travel to the database host (and into pyinfra's logs)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

ITERATIONS = 4096
_VERIFIER = re.compile(r"^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$")


def _keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return hashlib.sha256(client_key).digest(), server_key


def verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """What PostgreSQL stores in pg_authid.rolpassword for ``password`` (RFC 5802/7677)."""
    salt = salt if salt is not None else os.urandom(16)
    stored, server = _keys(password, salt, iterations)
    b64 = base64.b64encode
    return f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}${b64(stored).decode()}:{b64(server).decode()}"


def matches(password: str, stored_verifier: str) -> bool:
    """True when the stored verifier was made from ``password``."""
    m = _VERIFIER.match(stored_verifier or "")
    if not m:
        return False
    salt = base64.b64decode(m.group(2))
    stored, server = _keys(password, salt, int(m.group(1)))
    return hmac.compare_digest(base64.b64encode(stored).decode(), m.group(3)) and \
        hmac.compare_digest(base64.b64encode(server).decode(), m.group(4))
