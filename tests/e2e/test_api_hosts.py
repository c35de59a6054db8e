"""localcloud serve --hosts nspawn, driven only through hcloud-python and SSH: servers
created through the API are real Debian machines."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hcloud import APIException, Client
from hcloud.actions.domain import ActionFailedException
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.networks import BoundNetwork, NetworkSubnet
from hcloud.server_types import ServerType
from hcloud.servers import BoundServer
from hcloud.ssh_keys import BoundSSHKey

from tests.conftest import READONLY_TOKEN, TOKEN, LocalCloud, SpecRecorder
from tests.e2e.conftest import assert_nothing_left, ours, ssh
from tests.e2e.prerequisites import skip_or_fail

pytestmark = pytest.mark.e2e

USER_DATA = """#cloud-config
write_files:
  - path: /etc/nornos/role
    content: {role}
runcmd:
  - echo "first boot of $(hostname)" > /root/first-boot
"""


def start_with_hosts(state: Path, timeout: float = 900, extra: tuple[str, ...] = ()) -> LocalCloud:
    """localcloud serve --hosts nspawn (the template may be built first: about a minute);
    ``extra``: more serve arguments, e.g. ("--faults", json.dumps({"apt": [...]}))."""
    state.mkdir(parents=True, exist_ok=True)
    port_file = state / "port.json"
    port_file.unlink(missing_ok=True)
    log = state / "localcloud.log"
    args = [sys.executable, "-m", "localcloud", "serve", "--port", "0", "--state", str(state / "api"),
            "--token", TOKEN, "--readonly-token", READONLY_TOKEN, "--port-file", str(port_file),
            "--hosts", "nspawn", "--time-scale", "0.2", *extra]
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
    try:
        return _wait_started(proc, state, args, port_file, log, timeout)
    except BaseException:
        if proc.poll() is None:
            proc.terminate()  # it cleans up after itself on SIGTERM
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise


def stop_with_hosts(lc: LocalCloud) -> None:
    """SIGTERM: localcloud powers its machines off and removes what it made; killed after 90 s."""
    lc.proc.terminate()
    try:
        lc.proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        lc.proc.kill()
        lc.proc.wait()


def _wait_started(proc: subprocess.Popen[bytes], state: Path, args: list[str], port_file: Path, log: Path,
                  timeout: float) -> LocalCloud:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text()
            if "another localcloud with real hosts is running" in text:
                skip_or_fail(text.strip().splitlines()[-1])
            raise RuntimeError(f"localcloud exited with {proc.returncode}: {text[-2000:]}")
        if port_file.exists():
            try:
                port = json.loads(port_file.read_text())["port"]
                if requests.get(f"http://127.0.0.1:{port}/_localcloud/health", timeout=5).ok:
                    return LocalCloud(proc, port, state, args, log)
            except (ValueError, KeyError, requests.RequestException):
                pass
        time.sleep(0.2)
    raise RuntimeError(f"localcloud --hosts nspawn did not start within {timeout:.0f} s")


@pytest.fixture(scope="module")
def cloud(workdir: Path) -> Iterator[LocalCloud]:
    lc = start_with_hosts(workdir / "api-hosts")
    try:
        yield lc
    finally:
        stop_with_hosts(lc)
        assert "machines powered off" in lc.log.read_text()
        assert_nothing_left()


@pytest.fixture
def client(cloud: LocalCloud, recorder: SpecRecorder) -> Iterator[Client]:
    cloud.reset()
    c = Client(token=TOKEN, api_endpoint=cloud.endpoint, poll_interval=0.2, poll_max_retries=3000,
               application_name="nornos-e2e")
    c._client._session.hooks["response"].append(recorder.hook)
    yield c
    cloud.reset()  # destroys the machines
    if recorder.problems:
        pytest.fail(f"spec mismatches: {sorted(set(recorder.problems))}", pytrace=False)


def create(client: Client, name: str, key: BoundSSHKey, network: BoundNetwork | None = None,
           image: Image | None = None, user_data: str | None = None) -> BoundServer:
    created = client.servers.create(name=name, server_type=ServerType(name="cx23"),
                                    image=image or Image(name="debian-12"), ssh_keys=[key],
                                    networks=[network] if network else None, user_data=user_data)
    created.action.wait_until_finished()
    for action in created.next_actions:
        action.wait_until_finished()
    return client.servers.get_by_id(created.server.id)


def boot_id(key: Path, ip: str) -> str:
    return ssh(key, ip, "cat /proc/sys/kernel/random/boot_id").stdout.strip()


def test_a_server_is_a_real_machine_through_the_api(client: Client, cloud: LocalCloud, ssh_key: Path) -> None:
    key = client.ssh_keys.create(name="admin", public_key=ssh_key.with_suffix(".pub").read_text())
    net = client.networks.create(name="private", ip_range="10.50.0.0/16",
                                 subnets=[NetworkSubnet(type="cloud", ip_range="10.50.1.0/24",
                                                        network_zone="eu-central")])
    started = time.monotonic()
    web = create(client, "web-1", key, net, user_data=USER_DATA.format(role="web"))
    took = time.monotonic() - started
    assert web.status == "running" and took < 120
    ip = web.public_net.ipv4.ip
    private_ip = web.private_net[0].ip
    out = ssh(ssh_key, ip, "hostname; cat /etc/nornos/role; echo; cat /root/first-boot; "
                           "ip -br -4 addr show enp7s0 | awk '{print $3}'; systemctl is-system-running").stdout
    assert out.split("\n")[:5] == ["web-1", "web", "first boot of web-1", f"{private_ip}/16", "running"]

    db = create(client, "db-1", key, net)
    ssh(ssh_key, db.public_net.ipv4.ip, f"ping -c1 -W2 {private_ip}")

    before = boot_id(ssh_key, ip)
    web.reboot().wait_until_finished()
    assert client.servers.get_by_id(web.id).status == "running"
    assert boot_id(ssh_key, ip) != before

    web.power_off().wait_until_finished()
    assert client.servers.get_by_id(web.id).status == "off"
    assert ssh(ssh_key, ip, "true", check=False, timeout=30).returncode != 0
    web.power_on().wait_until_finished()
    assert ssh(ssh_key, ip, "cat /root/first-boot").stdout == "first boot of web-1\n"  # runs once only

    web.detach_from_network(net).wait_until_finished()
    assert ssh(ssh_key, ip, "ip link show enp7s0", check=False).returncode != 0
    web.attach_to_network(net, ip="10.50.1.77").wait_until_finished()
    ssh(ssh_key, db.public_net.ipv4.ip, "ping -c1 -W2 10.50.1.77")

    web.delete().wait_until_finished()
    assert f"lc-{web.id}" not in ours()["netns"]
    assert ssh(ssh_key, ip, "true", check=False, timeout=30).returncode != 0
    db.delete().wait_until_finished()
    net.delete()
    time.sleep(0.5)
    left = ours()
    assert not left["netns"] and not left["mounts"] and left["links"] == ["lc-pub"]


def test_snapshot_rebuild_and_a_boot_that_fails(client: Client, cloud: LocalCloud, ssh_key: Path) -> None:
    key = client.ssh_keys.create(name="admin", public_key=ssh_key.with_suffix(".pub").read_text())
    src = create(client, "src-1", key)
    ssh(ssh_key, src.public_net.ipv4.ip, "echo kept > /root/data")
    made = src.create_image(description="with data")
    made.action.wait_until_finished()
    image = client.images.get_by_id(made.image.id)
    assert image.status == "available" and image.image_size and image.image_size > 0.1

    copy = create(client, "copy-1", key, image=image, user_data=USER_DATA.format(role="copy"))
    out = ssh(ssh_key, copy.public_net.ipv4.ip, "cat /root/data; hostname; cat /etc/nornos/role").stdout
    assert out == "kept\ncopy-1\ncopy"

    rebuilt = copy.rebuild(Image(name="debian-12"))
    rebuilt.action.wait_until_finished()
    assert ssh(ssh_key, copy.public_net.ipv4.ip, "test -e /root/data", check=False).returncode == 1

    # a snapshot whose disk cannot boot: the start action ends in error, the server is off
    rootfs = cloud.state / "api" / "hosts" / "images" / str(image.id) / "rootfs"
    for init in ("sbin/init", "lib/systemd/systemd", "usr/lib/systemd/systemd"):
        (rootfs / init).unlink(missing_ok=True)
    created = client.servers.create(name="broken-1", server_type=ServerType(name="cx23"), image=image,
                                    ssh_keys=[key])
    created.action.wait_until_finished()
    with pytest.raises(ActionFailedException) as failed:
        created.next_actions[0].wait_until_finished()
    assert failed.value.action.command == "start_server"
    assert "boot" in (failed.value.action.error or {}).get("message", "")
    broken = client.servers.get_by_id(created.server.id)
    assert broken.status == "off"
    image.delete()
    time.sleep(0.5)
    assert rootfs.is_dir()  # broken-1's disk is made over it: the files stay while it exists
    broken.delete().wait_until_finished()
    assert _wait_gone(rootfs.parent)


def _wait_gone(path: Path, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not path.exists()


def test_user_data_script_and_base64_files(client: Client, cloud: LocalCloud, ssh_key: Path) -> None:
    key = client.ssh_keys.create(name="admin", public_key=ssh_key.with_suffix(".pub").read_text())
    payload = base64.b64encode(b"binary\x00ok").decode()
    server = create(client, "files-1", key, user_data=f"""#cloud-config
write_files:
  - path: /opt/blob
    encoding: b64
    content: {payload}
ssh_authorized_keys:
  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ extra@nornos
""")
    out = ssh(ssh_key, server.public_net.ipv4.ip, "base64 /opt/blob; grep -c . /root/.ssh/authorized_keys").stdout
    assert out.split() == [payload, "2"]


def test_volumes_are_block_devices_in_the_machines(client: Client, cloud: LocalCloud, ssh_key: Path) -> None:
    key = client.ssh_keys.create(name="admin", public_key=ssh_key.with_suffix(".pub").read_text())
    a = create(client, "vol-a", key)
    b = create(client, "vol-b", key)
    ip_a, ip_b = a.public_net.ipv4.ip, b.public_net.ipv4.ip
    made = client.volumes.create(size=10, name="data", server=a, format="ext4")
    made.action.wait_until_finished()
    for action in made.next_actions:
        action.wait_until_finished()
    volume = client.volumes.get_by_id(made.volume.id)
    dev = volume.linux_device
    assert dev == f"/dev/disk/by-id/scsi-0HC_Volume_{volume.id}"
    out = ssh(ssh_key, ip_a, f"readlink {dev}; blkid -o value -s TYPE {dev}; mkdir -p /data; mount {dev} /data; "
                             "echo kept > /data/file").stdout.split()
    assert out == ["../../sdb", "ext4"]
    assert len(ours()["loops"]) == 2  # the loop device and its record

    ssh(ssh_key, ip_a, "sync")
    volume.detach().wait_until_finished()  # mounted, and detached anyway: Hetzner pulls the disk too
    gone = ssh(ssh_key, ip_a, f"findmnt -n /data >/dev/null && echo mounted; test -e {dev} && echo link; "
                              "test -e /dev/sdb && echo node; true").stdout.split()
    assert gone == [] and client.volumes.get_by_id(volume.id).server is None
    deadline = time.monotonic() + 10  # the kernel frees the loop device once the file system is released
    while ours()["loops"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ours()["loops"]

    volume.attach(b, automount=True).wait_until_finished()  # data intact on another server, mounted
    mnt = f"/mnt/HC_Volume_{volume.id}"
    assert ssh(ssh_key, ip_b, f"cat {mnt}/file; grep -c HC_Volume_{volume.id} /etc/fstab").stdout.split() == \
        ["kept", "1"]

    volume.resize(12).wait_until_finished()
    assert ssh(ssh_key, ip_b, f"blockdev --getsize64 {dev}").stdout.strip() == str(12 << 30)

    # as on Hetzner, an attached volume is there when the machine boots: a service ordered like
    # any data service (after local-fs.target) finds its fstab mount in place
    probe = ("[Unit]\nAfter=local-fs.target\n[Service]\nType=oneshot\nExecStart=/bin/sh -c "
             f"'mountpoint -q {mnt} && echo mounted > /root/at-boot || echo missing > /root/at-boot'\n"
             "[Install]\nWantedBy=multi-user.target\n")
    ssh(ssh_key, ip_b, f"printf %s {shlex.quote(probe)} > /etc/systemd/system/probe.service && "
                       "systemctl enable -q probe.service")
    before = boot_id(ssh_key, ip_b)
    b.reboot().wait_until_finished()
    assert boot_id(ssh_key, ip_b) != before
    assert ssh(ssh_key, ip_b, f"readlink {dev}; cat {mnt}/file").stdout.split() == ["../../sdb", "kept"]
    assert ssh(ssh_key, ip_b, "cat /root/at-boot").stdout.strip() == "mounted"

    # server create with volumes (xfs, automount); a second volume on b is sdc
    location = Location(name=a.location.name)  # by name: the spec types it a string
    other = client.volumes.create(size=10, name="logs", location=location, format="xfs")
    other.action.wait_until_finished()
    created = client.servers.create(name="vol-c", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                    ssh_keys=[key], volumes=[other.volume], automount=True)
    created.action.wait_until_finished()
    for action in created.next_actions:
        action.wait_until_finished()
    c = client.servers.get_by_id(created.server.id)
    out = ssh(ssh_key, c.public_net.ipv4.ip, f"findmnt -n -o FSTYPE /mnt/HC_Volume_{other.volume.id}").stdout
    assert out.strip() == "xfs"

    b.delete().wait_until_finished()  # its volume stays, detached, with the data
    c.delete().wait_until_finished()
    assert client.volumes.get_by_id(volume.id).server is None and not ours()["loops"]
    volume.attach(a).wait_until_finished()
    assert ssh(ssh_key, ip_a, f"mount {dev} /data; cat /data/file").stdout == "kept\n"
    # a process holds a file open: the detach still pulls the disk, but the old file system lives
    # on until the file is closed, so attaching the volume again must wait (never mounted twice)
    ssh(ssh_key, ip_a, "systemd-run --unit holder sh -c 'exec 3</data/file; exec sleep 600'")
    volume.detach().wait_until_finished()
    with pytest.raises(ActionFailedException) as held:
        volume.attach(a).wait_until_finished()
    assert "still in use" in (held.value.action.error or {}).get("message", "")
    ssh(ssh_key, ip_a, "systemctl stop holder")
    deadline = time.monotonic() + 10
    while str(cloud.state / "api" / "hosts" / "volumes") in " ".join(ours()["loops"]) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    volume.attach(a).wait_until_finished()
    assert ssh(ssh_key, ip_a, f"mount {dev} /data; cat /data/file; umount /data").stdout == "kept\n"
    with pytest.raises(APIException):
        volume.delete()  # attached
    volume.detach().wait_until_finished()
    volume.delete()
    client.volumes.get_by_id(other.volume.id).delete()
    a.delete().wait_until_finished()
    time.sleep(0.5)
    assert not ours()["loops"] and not list((cloud.state / "api" / "hosts" / "volumes").glob("*.img"))
