"""Snapshots (create_image): a copy of a machine's whole disk, as a new lower layer.

The copy is taken from the mounted overlay (the disk as the machine sees it, whiteouts
resolved), so a snapshot stands on its own: it does not depend on the template version it
came from, and servers created from it boot it read-only under their own overlay. A
snapshot of a running machine is crash-consistent, like Hetzner's.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from localcloud.hosts.system import HostError, run


def image_dir(images: Path, image_id: int) -> Path:
    return images / str(image_id)


def create(source: Path, images: Path, image_id: int, meta: dict[str, object]) -> int:
    """Copy the tree at ``source`` into the image store; returns its size in bytes."""
    final = image_dir(images, image_id)
    tmp = images / f".tmp-{image_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "rootfs").mkdir(parents=True)
    try:
        run(["cp", "-a", "--one-file-system", f"{source}/.", str(tmp / "rootfs")], timeout=1800)
        size = int(run(["du", "-sb", str(tmp / "rootfs")]).stdout.split()[0])
        (tmp / "image.json").write_text(json.dumps({**meta, "id": image_id, "size": size, "created": time.time()}))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return size


def rootfs(images: Path, image_id: int) -> Path:
    path = image_dir(images, image_id) / "rootfs"
    if not (image_dir(images, image_id) / "image.json").exists() or (image_dir(images, image_id) / "deleted").exists():
        raise HostError(f"image {image_id} has no disk on this machine (it was made without --hosts nspawn "
                        "or its files were removed)")
    return path


def delete(images: Path, image_id: int, in_use: set[Path]) -> None:
    """Remove a snapshot; one that a machine's disk still uses as its lower layer stays (marked
    deleted) until that machine is destroyed or rebuilt: see :func:`collect`."""
    path = image_dir(images, image_id)
    if (path / "rootfs") in in_use:
        (path / "deleted").touch()
    else:
        shutil.rmtree(path, ignore_errors=True)


def collect(images: Path, in_use: set[Path]) -> None:
    """Remove deleted snapshots no machine uses any more."""
    for marker in images.glob("*/deleted"):
        if (marker.parent / "rootfs") not in in_use:
            shutil.rmtree(marker.parent, ignore_errors=True)
