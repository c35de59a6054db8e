"""localcloud's settings, from the command line (``python -m localcloud serve --help``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TOKEN = "localcloud-token"
DEFAULT_READONLY_TOKEN = "localcloud-readonly-token"

# Project limits (resource_limit_exceeded beyond them); the real defaults are similar.
DEFAULT_LIMITS: dict[str, int] = {
    "servers": 100,
    "volumes": 100,
    "networks": 50,
    "firewalls": 100,
    "load_balancers": 20,
    "primary_ips": 200,
    "placement_groups": 50,
    "ssh_keys": 200,
    "images": 100,
    "volume_size_gb": 10_240,
}


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8700
    state_dir: Path | None = None  # None keeps everything in memory
    token: str = DEFAULT_TOKEN
    readonly_token: str = DEFAULT_READONLY_TOKEN
    profile: str = "fast"
    time_scale: float = 1.0
    rate_limit: int = 3600  # requests per hour; refills one per 3600/limit seconds
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    faults: str | None = None  # JSON text or @path, see localcloud/faults.py
    seed: int | None = None
    hosts: str = "none"  # "none": API only; "nspawn": real Debian machines (part 2)
