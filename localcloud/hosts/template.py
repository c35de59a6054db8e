"""Image templates: a Debian root filesystem debootstrapped once and cached.

A template is built in a temporary directory next to the cache and renamed into place
when complete, so a killed build never leaves a half template. Its directory name
carries the hash of its recipe (suite, packages, tweaks): a changed recipe builds a new
template, a missing one is rebuilt, a complete one is reused (a warm start takes
milliseconds). Machines use a template read-only, as the lower layer of their overlay.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from localcloud.hosts import cloudinit, volumes
from localcloud.hosts.system import HostError, log, run

RECIPE_VERSION = 1
DEFAULT_CACHE = Path("/var/cache/localcloud/templates")
# The images a server can be created from, and the Debian suite each is built from.
SUITES: dict[str, str] = {"debian-11": "bullseye", "debian-12": "bookworm", "debian-13": "trixie"}
DEFAULT_IMAGE = "debian-12"
PACKAGES: tuple[str, ...] = (
    "openssh-server", "python3", "systemd-sysv", "dbus", "iproute2", "ca-certificates", "sudo", "procps",
    "cron", "iputils-ping", "netcat-openbsd", "curl", "less",
)
SSH_DROPIN = """\
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""
MASKED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer", "apt-daily.service", "apt-daily-upgrade.service",
                "e2scrub_all.timer", "fstrim.timer", "getty-static.service")


def sources(suite: str) -> str:
    """deb822 sources as on Debian's cloud images; plain http so the apt proxy can cache them."""
    security = f"{suite}-security" if suite != "bullseye" else "bullseye-security"
    return (f"Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {suite} {suite}-updates\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
            f"Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: {security}\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")


def suite_of(image_name: str | None) -> tuple[str, str]:
    """(template name, Debian suite) for an image name; other images boot debian-12."""
    if image_name in SUITES:
        return image_name, SUITES[image_name]
    return DEFAULT_IMAGE, SUITES[DEFAULT_IMAGE]


def recipe(suite: str, proxy_url: str) -> dict[str, object]:
    return {"version": RECIPE_VERSION, "suite": suite, "packages": list(PACKAGES), "ssh_dropin": SSH_DROPIN,
            "masked": list(MASKED_UNITS), "proxy": proxy_url, "sources": sources(suite),
            "files": {k: hashlib.sha256(v[0].encode()).hexdigest() for k, v in image_files().items()},
            "links": image_links()}


def image_files() -> dict[str, tuple[str, int]]:
    """localcloud's own files in the image (cloud-init's stand-in, the volumes at boot)."""
    return {**cloudinit.TEMPLATE_FILES, **volumes.TEMPLATE_FILES}


def image_links() -> dict[str, str]:
    return {**cloudinit.TEMPLATE_LINKS, **volumes.TEMPLATE_LINKS}


@dataclass(frozen=True)
class Template:
    name: str
    path: Path  # the template directory; the root filesystem is path / "rootfs"
    built: bool  # True when this call built it (cold), False when it came from the cache
    seconds: float

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"


def ensure(name: str, mirror: str, proxy_url: str, cache: Path = DEFAULT_CACHE,
           keep: set[Path] | None = None) -> Template:
    """The template for an image name, built when missing or when its recipe changed; an
    older version stays while a mounted or kept disk uses it (``keep``)."""
    started = time.monotonic()
    name, suite = suite_of(name)
    rec = recipe(suite, proxy_url)
    digest = hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:12]
    final = cache / f"{name}-{digest}"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time, across processes
        if (final / "recipe.json").exists() and (final / "rootfs" / "sbin" / "init").exists():
            return Template(name, final, False, time.monotonic() - started)
        shutil.rmtree(final, ignore_errors=True)
        tmp = cache / f".build-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            log.info("building template %s (debootstrap %s via %s), about a minute", name, suite, mirror)
            _debootstrap(suite, tmp / "rootfs", mirror)
            _tweak(tmp / "rootfs", suite, proxy_url)
            (tmp / "recipe.json").write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _remove_old(cache, name, {final, *(keep or set())})
    took = time.monotonic() - started
    log.info("template %s built in %.1f s", name, took)
    return Template(name, final, True, took)


def _debootstrap(suite: str, rootfs: Path, mirror: str) -> None:
    run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", "--components=main",
         suite, rootfs, mirror], timeout=1800)


def _tweak(root: Path, suite: str, proxy_url: str) -> None:
    """The recipe's template changes: no host keys or identity, no apt timers, the proxy."""
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("")
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("# localcloud machines have no DNS server; apt goes through the proxy\n")
    dropin = root / "etc/systemd/system/ssh.service.d/localcloud.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(SSH_DROPIN)
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(sources(suite))
    (root / "etc/apt/apt.conf.d/01localcloud-proxy").write_text(cloudinit.apt_proxy_conf(proxy_url))
    for rel, (text, mode) in image_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    for rel, target in image_links().items():
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    run(["chroot", root, "apt-get", "clean"])
    lists = root / "var/lib/apt/lists"
    for entry in lists.iterdir() if lists.is_dir() else []:
        if entry.is_file() and entry.name != "lock":
            entry.unlink()
    if not (root / "sbin/init").exists():
        raise HostError(f"template {root} has no /sbin/init (systemd-sysv missing?)")


def _remove_old(cache: Path, name: str, keep: set[Path]) -> None:
    """Earlier versions of the template, unless a machine still uses one."""
    mounts = Path("/proc/self/mountinfo").read_text()
    for old in cache.glob(f"{name}-*"):
        if old not in keep and old.is_dir() and str(old) not in mounts:
            shutil.rmtree(old, ignore_errors=True)
