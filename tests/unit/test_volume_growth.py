"""The postgres role's check whether the data volume grew past its file system, and its online
resize: the role's own shell command, run here on a real loop device with ext4 (3 GiB, then
4 GiB: past 2^31 bytes, where Debian's awk once printed 3.22123e+09 and the check never fired),
then resize2fs. Offline: an online resize needs CAP_SYS_RESOURCE, which neither this machine nor
localcloud's containers have (tests/e2e/test_deploy_hosts.py shows what the deploy says there)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nornos_infra.roles.postgres import sizes_command, volume_larger_than_filesystem

GIB = 1 << 30


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if os.geteuid() != 0 or not shutil.which("losetup"):
        if os.environ.get("CI") == "true":
            pytest.fail("needs root and losetup (CI runs as root)")
        pytest.skip("needs root and losetup for a loop device")
    image = tmp_path / "volume.img"
    image.touch()
    os.truncate(image, 3 * GIB)  # sparse
    device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        yield device, image
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


def _sizes(device: str) -> str:
    return subprocess.run(["sh", "-c", sizes_command(device, "ext4")], check=True, capture_output=True,
                          text=True).stdout


def test_a_grown_volume_is_seen_and_resize2fs_settles_it(loop_device: tuple[str, Path]) -> None:
    device, image = loop_device
    subprocess.run(["mkfs.ext4", "-q", device], check=True)
    assert _sizes(device).split() == [str(3 * GIB), str(3 * GIB)]
    assert not volume_larger_than_filesystem(_sizes(device))
    os.truncate(image, 4 * GIB)  # what localcloud does for a volume resize, then the loop device follows
    subprocess.run(["losetup", "-c", device], check=True)
    assert _sizes(device).split() == [str(4 * GIB), str(3 * GIB)]
    assert volume_larger_than_filesystem(_sizes(device))
    # offline here: this machine lacks CAP_SYS_RESOURCE, which an online resize (mounted) needs
    subprocess.run(["resize2fs", device], check=True, capture_output=True)
    assert not volume_larger_than_filesystem(_sizes(device)), "grown once: the next deploy changes nothing"


def test_what_cannot_be_read_is_nothing_to_grow() -> None:
    assert not volume_larger_than_filesystem("")
    assert not volume_larger_than_filesystem("53687091200 5.36871e+10")
    assert volume_larger_than_filesystem("64424509440 53687091200")
    assert not volume_larger_than_filesystem("53687095296 53687091200")  # within the threshold
