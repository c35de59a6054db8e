"""The k3s releases this repository can install or upgrade to, each with its binary's sha256 pinned.

The k3s role and ``invoke upgrade`` install only a version listed here and check the binary against
the figure here, never against a checksum file fetched beside the binary alone (a compromised
download would bring its own matching file). Where the host can reach GitHub, the release's own
``sha256sum-amd64.txt`` is read as well and must list the same figure, so a wrong pin fails the
install loudly instead of being trusted.

To add a release: take the ``k3s`` line of ``sha256sum-amd64.txt`` from
https://github.com/k3s-io/k3s/releases/download/<version>/ (``+`` written ``%2B``), add it below
with where it was read, and set ``k3s.version`` in the env file (docs/RUNBOOK.md, "Upgrading k3s").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nornos_infra.errors import UserError

# version -> sha256 of the amd64 ``k3s`` binary. GitHub's release files cannot be read from the
# machine this table was written on; each figure is the one public pins of it agree on:
PINNED_SHA256: dict[str, str] = {
    # the andrewrothstein/ansible-k3s role (checksums per version, from sha256sum-amd64.txt) and
    # zarf-dev/zarf's k3s package agree
    "v1.34.3+k3s1": "f95350e3997165974d1d1406f01aabaf869aed7ca790cc2d83a92a82f26a06c5",
    # one public pin (a Nix package of the release binary); the release's sha256sum-amd64.txt is
    # compared with it at every download
    "v1.35.0+k3s3": "cf99be0b6562545f7f9d2c35ee9f3f2933a42e6598762b93f5b38e072d5bff77",
}

_VERSION = re.compile(r"v(\d+)\.(\d+)\.(\d+)\+k3s(\d+)")


@dataclass(frozen=True, order=True)
class K3sVersion:
    """A k3s release, ordered as releases are: Kubernetes version first, then the k3s build."""

    major: int
    minor: int
    patch: int
    build: int

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}+k3s{self.build}"


def parse(text: str) -> K3sVersion:
    """``v1.35.0+k3s3``; also the first line of ``k3s --version`` or a node's kubeletVersion."""
    found = _VERSION.search(text)
    if found is None:
        raise UserError(f"{text.strip()!r} is not a k3s version (like v1.35.0+k3s3)")
    major, minor, patch, build = (int(part) for part in found.groups())
    return K3sVersion(major, minor, patch, build)


def pinned_sha256(version: str, pinned: dict[str, str] | None = None) -> str:
    """The pinned checksum of ``version``, or one line saying it has none and what to do."""
    table = PINNED_SHA256 if pinned is None else pinned
    if version not in table:
        known = ", ".join(sorted(table, key=parse)) or "none"
        raise UserError(f"k3s {version} has no pinned checksum in nornos_infra/k3s_releases.py (pinned: {known}); "
                        "add the release's sha256 there first (docs/RUNBOOK.md, 'Upgrading k3s')")
    return table[version]


def download_url(version: str, asset: str) -> str:
    return f"https://github.com/k3s-io/k3s/releases/download/{version.replace('+', '%2B')}/{asset}"
