"""redis: private IP only, protected mode, ACL users whose passwords are stored as SHA-256
hashes, maxmemory sized from the server with volatile-lru, AOF persistence, debug and
module commands off, FLUSHALL/FLUSHDB renamed away.

volatile-lru evicts only keys with a TTL (cache entries and sessions both carry one), so
keys the apps keep without a TTL are never thrown out under memory pressure.
"""

from __future__ import annotations

import hashlib

from pyinfra.api.exceptions import OperationError
from pyinfra.context import host
from pyinfra.operations import files, systemd

from nornos_infra.paths import TEMPLATES
from nornos_infra.roles import context, sizing
from nornos_infra.roles.facts import MemoryMb
from nornos_infra.roles.ops import apt_packages, apt_update, secret_file

APP_USER = "nornos_app"
ADMIN_USER = "nornos_admin"
MONITOR_USER = "nornos_monitor"  # the redis exporter (nornos_infra/roles/exporters.py)


# what the redis exporter runs (INFO, CONFIG GET, CLIENT LIST, SLOWLOG, LATENCY LATEST, MEMORY
# STATS), and no key of the apps
MONITOR_COMMANDS = ("-@all +ping +info +config|get +client|list +client|info +client|setname +slowlog|get "
                    "+slowlog|len +latency|latest +memory|stats +select")


def acl_file(app_password: str, admin_password: str, monitor_password: str) -> str:
    """users.acl: the default user off; passwords only as #sha256 (Redis ACL syntax)."""
    def digest(password: str) -> str:
        return hashlib.sha256(password.encode()).hexdigest()

    return (f"user default off\n"
            f"user {APP_USER} on #{digest(app_password)} ~* &* +@all -@dangerous\n"
            f"user {ADMIN_USER} on #{digest(admin_password)} ~* &* +@all\n"
            f"user {MONITOR_USER} on #{digest(monitor_password)} resetkeys resetchannels {MONITOR_COMMANDS}\n")


@context.role("Redis")
def redis() -> None:
    private_ip = host.data.get("private_ip")
    if not private_ip:
        raise OperationError(f"{host.name}: the inventory has no private_ip; run provision.py")
    values = context.current().secrets
    apt_update(name="Update apt lists", cache_time=6 * 3600)
    apt_packages(name="Install Redis", packages=["redis-server", "redis-tools"])
    memory = sizing.effective_mb(host.get_fact(MemoryMb), host.data.get("memory_mb"))
    conf = files.template(name="Redis settings", src=str(TEMPLATES / "redis.conf.j2"), dest="/etc/redis/redis.conf",
                          user="redis", group="redis", mode="640", private_ip=private_ip,
                          maxmemory_mb=sizing.redis_maxmemory_mb(memory))
    acl = secret_file(name="Redis ACL users (hashed passwords)", path="/etc/redis/users.acl",
                      content=acl_file(values["redis_password"], values["redis_admin_password"],
                                       values["redis_monitor_password"]),
                      mode="640", user="redis", group="redis")
    limits = files.put(name="Redis: no core dumps", src=str(TEMPLATES / "redis-nornos.conf"),
                       dest="/etc/systemd/system/redis-server.service.d/50-nornos.conf", mode="644",
                       create_remote_dir=True)
    systemd.daemon_reload(name="systemd: read the Redis drop-in", _if=limits.did_change)
    systemd.service(name="Redis running", service="redis-server", running=True, enabled=True)
    systemd.service(name="Redis: restart on new settings", service="redis-server", restarted=True,
                    _if=lambda: conf.did_change() or acl.did_change())
