"""Start removes what a killed earlier run left behind: machines still running, namespaces,
veths, bridges, overlay mounts, cgroups, the apt proxy, by localcloud's names only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from localcloud.hosts.backend import Hosts
from tests.e2e.conftest import assert_nothing_left, ours
from tests.e2e.prerequisites import skip_or_fail

pytestmark = pytest.mark.e2e

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from localcloud.hosts.backend import Hosts
    from localcloud.machines import ImageRef, PrivateNic, ServerSpec
    h = Hosts(data_dir=Path(sys.argv[1]))
    h.start()
    h.create(ServerSpec(59000101, "doomed", ImageRef("debian-12"), [], None, "198.51.100.240", None,
                        [PrivateNic(19000101, "10.99.0.0/16", "10.99.0.2")]))
    h.boot(59000101)
    h.create_volume(1, 10, "ext4")
    h.attach_volume(59000101, 1)
    print("READY", flush=True)
    time.sleep(600)
""")


def test_start_removes_the_leftovers_of_a_killed_run(workdir: Path) -> None:
    if subprocess.run(["ip", "link", "show", "lcfoo0"], capture_output=True).returncode == 0:
        skip_or_fail("lcfoo0 exists (left by someone else): the test needs that name")
    # what merely looks like ours must survive: a bridge and a namespace whose names are not ours
    subprocess.run(["ip", "link", "add", "lcfoo0", "type", "bridge"], check=True)
    subprocess.run(["ip", "netns", "add", "lc-foo"], check=True)
    foreign_file = workdir / "not-ours" / "disk.img"  # a loop device of someone else's
    foreign_file.parent.mkdir(parents=True, exist_ok=True)
    foreign_file.write_bytes(b"\0" * (1 << 20))
    foreign = subprocess.run(["losetup", "--find", "--show", str(foreign_file)], capture_output=True, text=True,
                             check=True).stdout.strip()
    try:
        data = workdir / "killed-run"
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(data)], stdout=subprocess.PIPE, text=True,
                                cwd=Path(__file__).parents[2])
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "READY", f"the run to kill did not come up: {line!r}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.2)
        left = ours()
        assert "lc-59000101" in left["netns"] and "lcp59000101" in left["links"] and "lc-n19000101" in left["links"]
        assert left["mounts"] and left["cgroups"] and len(left["processes"]) >= 2  # nspawn and apt-cacher-ng
        assert any("volumes/1.img" in entry for entry in left["loops"])

        h = Hosts(data_dir=data)
        h.start()
        try:
            removed = " ".join(h.removed_at_start)
            for what in ("process nspawn-59000101", "process apt-cacher-ng", "netns lc-59000101",
                         "link lc-n19000101", "mount localcloud-59000101", "loop device /dev/loop"):
                assert what in removed  # (the veths went with their namespace)
            assert not (data / "machines" / "59000101").exists()
        finally:
            h.stop()
        assert_nothing_left()
        assert subprocess.run(["ip", "link", "show", "lcfoo0"], capture_output=True).returncode == 0
        assert "lc-foo" in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert subprocess.run(["losetup", "-j", str(foreign_file)], capture_output=True, text=True,
                              check=True).stdout.startswith(f"{foreign}:")
    finally:
        subprocess.run(["losetup", "-d", foreign], capture_output=True)
        subprocess.run(["ip", "link", "del", "lcfoo0"], capture_output=True)
        subprocess.run(["ip", "netns", "del", "lc-foo"], capture_output=True)
