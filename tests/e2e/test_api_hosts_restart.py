"""localcloud --hosts nspawn with --state: stop powers machines off and keeps their disks,
start boots them again (user_data ran once, the data is still there)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType

from tests.conftest import TOKEN
from tests.e2e.conftest import assert_nothing_left, ssh
from tests.e2e.test_api_hosts import start_with_hosts, stop_with_hosts

pytestmark = pytest.mark.e2e


def test_restart_keeps_the_machines(workdir: Path, ssh_key: Path) -> None:
    state = workdir / "restart"
    lc = start_with_hosts(state)
    try:
        client = Client(token=TOKEN, api_endpoint=lc.endpoint, poll_interval=0.2, poll_max_retries=3000)
        key = client.ssh_keys.create(name="admin", public_key=ssh_key.with_suffix(".pub").read_text())
        created = client.servers.create(name="keeper-1", server_type=ServerType(name="cx23"),
                                        image=Image(name="debian-12"), ssh_keys=[key],
                                        user_data="#cloud-config\npackages: [hello]\n"
                                                  "runcmd: [\"hello >> /root/greetings\"]\n")
        created.action.wait_until_finished()
        for action in created.next_actions:
            action.wait_until_finished()
        ip = created.server.public_net.ipv4.ip
        first = ssh(ssh_key, ip, "cat /root/greetings; cat /proc/sys/kernel/random/boot_id").stdout.split("\n")
        assert first[0] == "Hello, world!"
        lc.proc.terminate()
        assert lc.proc.wait(timeout=90) == 0
        assert_nothing_left()

        lc = start_with_hosts(state)
        client = Client(token=TOKEN, api_endpoint=lc.endpoint, poll_interval=0.2, poll_max_retries=3000)
        server = client.servers.get_by_name("keeper-1")
        assert server is not None and server.status == "running"
        for _ in range(600):  # the machine boots again in the background after the restart
            if ssh(ssh_key, ip, "systemctl is-system-running", check=False, timeout=10).stdout.strip() == "running":
                break
        again = ssh(ssh_key, ip, "cat /root/greetings; cat /proc/sys/kernel/random/boot_id").stdout.split("\n")
        assert again[:1] == ["Hello, world!"] and again[1] != first[1]  # runcmd ran once; a new boot
        server.delete().wait_until_finished()
    finally:
        stop_with_hosts(lc)
    assert_nothing_left()
