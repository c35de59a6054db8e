"""The admin SSH key pair that a localcloud environment uses (``.localcloud/ssh/id_ed25519``).

Made with the cryptography library (already required by pyinfra's SSH stack), so a fresh
machine needs no ssh-keygen; the private key is 0600 and never leaves this machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def ensure_keypair(private_path: Path, comment: str = "nornos-admin@localcloud") -> Path:
    """Create the key pair unless it exists; return the public key's path."""
    public_path = private_path.with_name(private_path.name + ".pub")
    if private_path.exists() and public_path.exists():
        return public_path
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    private_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                      serialization.NoEncryption())
    public_bytes = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_bytes)
    public_path.write_text(public_bytes.decode() + f" {comment}\n")
    return public_path
