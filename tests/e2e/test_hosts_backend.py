"""The hosts backend on its own: real Debian machines booted with systemd-nspawn."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.hosts import network
from localcloud.hosts.backend import Hosts
from localcloud.hosts.system import HostError, cgroup_hierarchies
from localcloud.machines import ImageRef, PrivateNic, ServerSpec
from tests.e2e.conftest import assert_nothing_left, ours, ssh
from tests.e2e.prerequisites import skip_or_fail

pytestmark = pytest.mark.e2e

S1, S2, S3 = 59_000_001, 59_000_002, 59_000_003
NET = 19_000_001
USER_DATA = """#cloud-config
write_files:
  - path: /etc/nornos/greeting
    content: hello from user_data
    permissions: '0600'
runcmd:
  - [sh, -c, "echo ran > /root/runcmd-ran"]
users: [default]
"""


@pytest.fixture(scope="module")
def hosts(workdir: Path) -> Iterator[Hosts]:
    h = Hosts(data_dir=workdir / "hosts-backend")
    try:
        h.start()
    except HostError as exc:
        if "another localcloud" in str(exc):
            skip_or_fail(str(exc))
        raise
    try:
        yield h
    finally:
        h.stop()
        assert_nothing_left()


def spec(sid: int, ip: str, key: Path, private: list[PrivateNic] | None = None, user_data: str | None = None,
         image: ImageRef | None = None) -> ServerSpec:
    return ServerSpec(sid, f"e2e-{sid}", image or ImageRef("debian-12"), [key.with_suffix(".pub").read_text()],
                      user_data, ip, None, private or [])


def sshd_answers(ip: str) -> bool:
    """True when an SSH server greets on ip:22 (a bare TCP connect is not enough: this machine's
    uplink may accept any connection on its own)."""
    try:
        with socket.create_connection((ip, 22), timeout=1) as sock:
            sock.settimeout(1)
            return sock.recv(4) == b"SSH-"
    except OSError:
        return False


def boot_id(key: Path, ip: str) -> str:
    return ssh(key, ip, "cat /proc/sys/kernel/random/boot_id").stdout.strip()


def test_template_builds_once_then_comes_from_the_cache(hosts: Hosts) -> None:
    first = hosts.template("debian-12")
    assert (first.rootfs / "sbin/init").exists()
    assert (first.rootfs / "usr/sbin/sshd").exists()
    assert not list((first.rootfs / "etc/ssh").glob("ssh_host_*")), "template must not carry SSH host keys"
    assert (first.rootfs / "etc/machine-id").read_text() == ""
    assert (first.rootfs / "etc/systemd/system/apt-daily.timer").resolve() == Path("/dev/null")
    again = hosts.template("debian-12")
    assert not again.built and again.path == first.path and again.seconds < 1


def test_machine_boots_and_root_logs_in_with_the_api_key(hosts: Hosts, ssh_key: Path) -> None:
    hosts.create(spec(S1, "198.51.100.201", ssh_key, [PrivateNic(NET, "10.77.0.0/16", "10.77.0.2")], USER_DATA))
    seconds = hosts.boot(S1)
    assert seconds < 60
    out = ssh(ssh_key, "198.51.100.201", "hostname; systemctl is-system-running; cat /etc/nornos/greeting; echo; "
                                         "stat -c %a /etc/nornos/greeting; cat /root/runcmd-ran; cloud-init status; "
                                         "ps -p 1 -o comm=; systemctl is-active ssh").stdout.split("\n")
    assert out[:9] == [f"e2e-{S1}", "running", "hello from user_data", "600", "ran", "status: done", "systemd",
                       "active", ""]
    log = ssh(ssh_key, "198.51.100.201", "cat /var/log/cloud-init-output.log").stdout
    assert "'users' is not supported" in log


def test_reboot_is_a_new_boot_and_reset_too(hosts: Hosts, ssh_key: Path) -> None:
    before = boot_id(ssh_key, "198.51.100.201")
    hosts.power(S1, "reboot")
    after = boot_id(ssh_key, "198.51.100.201")
    assert after != before
    hosts.power(S1, "reset")
    assert boot_id(ssh_key, "198.51.100.201") not in (before, after)
    assert ssh(ssh_key, "198.51.100.201", "cat /root/runcmd-ran").stdout == "ran\n"  # the disk survives


def test_poweroff_and_poweron(hosts: Hosts, ssh_key: Path) -> None:
    hosts.power(S1, "shutdown")
    assert not sshd_answers("198.51.100.201")
    assert not hosts.machine(S1).running()
    hosts.power(S1, "poweron")
    assert ssh(ssh_key, "198.51.100.201", "systemctl is-system-running").stdout.strip() == "running"
    hosts.power(S1, "poweroff")
    assert not sshd_answers("198.51.100.201")
    hosts.power(S1, "poweron")
    assert sshd_answers("198.51.100.201")


def test_private_network_between_machines_only(hosts: Hosts, ssh_key: Path) -> None:
    hosts.create(spec(S2, "198.51.100.202", ssh_key, [PrivateNic(NET, "10.77.0.0/16", "10.77.0.3")]))
    hosts.boot(S2)
    ssh(ssh_key, "198.51.100.202", "ping -c1 -W2 10.77.0.2")
    ssh(ssh_key, "198.51.100.201", "ping -c1 -W2 10.77.0.3")
    assert ssh(ssh_key, "198.51.100.202", "ip -br addr show enp7s0").stdout.split()[2] == "10.77.0.3/16"
    # this machine (the internet, the admin) has no way into the private network
    assert not sshd_answers("10.77.0.2")
    route = subprocess.run(["ip", "route", "get", "10.77.0.2"], capture_output=True, text=True).stdout
    assert "lc-" not in route
    # machines have no default route: nothing but this machine and other servers is reachable
    assert ssh(ssh_key, "198.51.100.202", "ip route show default").stdout.strip() == ""
    ssh(ssh_key, "198.51.100.202", "ping -c1 -W2 198.51.100.1")  # the admin's workstation
    ssh(ssh_key, "198.51.100.202", "ping -c1 -W2 198.51.100.201")  # another server's public IP


def test_attach_and_detach_a_network_while_running(hosts: Hosts, ssh_key: Path) -> None:
    name = hosts.attach_network(S2, PrivateNic(NET + 1, "10.88.0.0/16", "10.88.0.5", (), "86:00:00:aa:bb:cc"))
    assert name == "enp8s0"
    out = ssh(ssh_key, "198.51.100.202", "ip -br link show enp8s0; ip -br addr show enp8s0").stdout.split()
    assert "86:00:00:aa:bb:cc" in out and "10.88.0.5/16" in out
    hosts.detach_network(S2, NET + 1)
    assert ssh(ssh_key, "198.51.100.202", "ip link show enp8s0", check=False).returncode != 0
    assert f"lc-n{NET + 1}" not in ours()["links"]


def test_apt_installs_a_package_through_the_proxy(hosts: Hosts, ssh_key: Path) -> None:
    out = ssh(ssh_key, "198.51.100.202", "apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                                         "hello >/dev/null && hello", timeout=300).stdout
    assert out.strip() == "Hello, world!"
    assert "198.51.100.1:3142" in ssh(ssh_key, "198.51.100.202", "apt-config dump | grep -i proxy").stdout


def test_snapshot_then_a_server_from_it(hosts: Hosts, ssh_key: Path) -> None:
    ssh(ssh_key, "198.51.100.201", "echo precious > /root/data; sync")
    old_host_key = ssh(ssh_key, "198.51.100.201", "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout
    size = hosts.snapshot(S1, 390_000_001)
    assert size > 100_000_000
    hosts.create(spec(S3, "198.51.100.203", ssh_key, image=ImageRef(snapshot=390_000_001)))
    hosts.boot(S3)
    out = ssh(ssh_key, "198.51.100.203", "cat /root/data; hostname; cat /etc/ssh/ssh_host_ed25519_key.pub").stdout
    data, hostname, host_key = out.split("\n", 2)
    assert (data, hostname) == ("precious", f"e2e-{S3}")
    assert host_key != old_host_key  # a new instance: new host keys, as cloud-init makes them
    image = hosts.images_dir / "390000001"
    hosts.delete_image(390_000_001)
    assert image.is_dir()  # S3's disk is made over it: it stays until S3 no longer needs it
    hosts.rebuild(S3, ImageRef("debian-12"))
    assert ssh(ssh_key, "198.51.100.203", "test -e /root/data", check=False).returncode == 1
    assert not image.exists()


def test_destroy_removes_the_machine(hosts: Hosts) -> None:
    disk = hosts.machine(S3).dir
    hosts.destroy(S3)
    left = ours()
    assert f"lc-{S3}" not in left["netns"]
    assert f"lcp{S3}" not in left["links"] and f"localcloud-{S3}" not in left["mounts"]
    assert not disk.exists()
    assert not any((h / "localcloud" / f"lc-{S3}").exists() for h in cgroup_hierarchies())
    assert not sshd_answers("198.51.100.203")
    with pytest.raises(HostError):
        hosts.machine(S3)


def test_stop_powers_machines_off_cleanly(hosts: Hosts) -> None:
    started = time.monotonic()
    assert len(hosts.machines) == 2
    assert hosts.stop() == []  # every machine powered off by systemd, none had its power cut
    assert time.monotonic() - started < 30
    assert not hosts.machines
    assert_nothing_left()
    assert not network.link_exists("lc-pub")
