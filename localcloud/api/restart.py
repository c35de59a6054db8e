"""After a restart with ``--state`` and real hosts: the machine side catches up with the store."""

from __future__ import annotations

import localcloud.api.firewalls as firewalls
import localcloud.api.load_balancers as load_balancers
from localcloud.api.machine_specs import server_spec
from localcloud.cloud import Cloud


def resume_machines(cloud: Cloud) -> None:
    """Machines for the stored servers (their disks were kept), their volumes attached again,
    booted when the server was running; then the firewalls and load balancers."""
    machines = cloud.machines
    if not machines.real:
        return
    keep: set[int] = set()
    for server in cloud.store.all("server"):
        sid = int(server["id"])
        keep.add(sid)
        machines.create_server(server_spec(cloud, server), keep_disk=True)
        for volume in cloud.store.all("volume"):  # the fstab entries are on the kept disk
            if volume.get("server") == sid:
                machines.attach_volume(int(volume["id"]), sid, False)
        if server["status"] in ("running", "starting", "rebuilding"):
            machines.boot(sid)
    machines.prune(keep, {int(v["id"]) for v in cloud.store.all("volume")})
    firewalls.machines_follow(cloud)
    load_balancers.all_follow(cloud)
