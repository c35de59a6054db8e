"""Put a checksum-pinned k3s binary in place on one host and restart k3s there.

The new binary is written beside the old one, checked against its pinned sha256, and only then
moved over it (a rename: a half-written file is never run). The binary it replaces is kept as
``k3s.previous``. From GitHub when the hosts reach the internet (the release's own checksum list
must name the pinned figure too), else streamed from a file on this machine over SSH.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

from nornos_infra import inventory, k3s_releases
from nornos_infra.errors import UserError
from nornos_infra.host_command import Outcome, run

BINARY = "/usr/local/bin/k3s"
UNIT = "k3s"  # the k3s role's unit, for servers and agents alike


def script(version: str, sha256: str, download: bool) -> str:
    """What runs on the host (as root); the binary on stdin when ``download`` is False."""
    new = f"{BINARY}.upgrade"
    fetch = (f"curl -fsSL --retry 3 -o {new} {shlex.quote(k3s_releases.download_url(version, 'k3s'))}\n"
             f"curl -fsSL --retry 3 {shlex.quote(k3s_releases.download_url(version, 'sha256sum-amd64.txt'))}"
             f" | grep -qx '{sha256}  k3s' || {{ echo 'the release sha256sum-amd64.txt of {version} does not list"
             f" the pinned checksum {sha256}'; rm -f {new}; exit 3; }}\n"
             if download else f"cat > {new}\n")
    return (
        "set -eu\n"
        + fetch
        + f"echo '{sha256}  {new}' | sha256sum -c --quiet - || {{ echo 'the k3s binary for {version} does not have"
        f" its pinned sha256 {sha256}: nothing was changed'; rm -f {new}; exit 3; }}\n"
        f"chmod 755 {new}\n"
        f"if [ -e {BINARY} ]; then cp -p {BINARY} {BINARY}.previous; fi\n"
        f"mv -f {new} {BINARY}\n"
        f"if ! systemctl restart {UNIT}; then\n"
        f"  echo 'k3s did not start with {version} (the binary it replaced is {BINARY}.previous):'\n"
        f"  journalctl -u {UNIT} -n 15 --no-pager -o cat || true\n"
        "  exit 4\n"
        "fi\n"
    )


def swap(host: inventory.Host, version: str, sha256: str, binary_file: Path | None, timeout: float = 600) -> Outcome:
    """Run the swap on ``host``: from ``binary_file`` (checked here first) or downloaded there."""
    if binary_file is None:
        return run(host, script(version, sha256, download=True), timeout=timeout)
    digest = hashlib.sha256(binary_file.read_bytes()).hexdigest()
    if digest != sha256:
        raise UserError(f"{binary_file}: sha256 {digest} is not the pinned {version} checksum {sha256}")
    with binary_file.open("rb") as stream:
        return run(host, script(version, sha256, download=False), timeout=timeout, stdin=stream)
