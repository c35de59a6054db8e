"""base (every host): packages, time sync, unattended security upgrades, SSH hardening,
journald limits, role sysctls, hostname.

Access decision: root logs in by SSH key only (as Hetzner installs it); passwords and
keyboard-interactive logins are off for everyone. A deploy user would add a sudo hop
without adding a boundary: whoever holds the deploy key is root either way.
"""

from __future__ import annotations

import re
from io import StringIO

from pyinfra import logger
from pyinfra.api.exceptions import OperationError
from pyinfra.context import host
from pyinfra.operations import files, server, systemd

from nornos_infra.paths import TEMPLATES
from nornos_infra.roles import context
from nornos_infra.roles.facts import InContainer
from nornos_infra.roles.hardening import hardening
from nornos_infra.roles.ops import apt_packages, apt_update

USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
PACKAGES = ["ca-certificates", "curl", "gnupg", "nftables", "unattended-upgrades", "apt-listchanges",
            "systemd-timesyncd", "cron", "logrotate", "less", "procps"]

# Kernel settings per role; inside a container (localcloud's machines) only net.* can be set.
SYSCTLS: dict[str, dict[str, str]] = {
    "all": {"net.ipv4.tcp_syncookies": "1", "net.ipv4.conf.all.rp_filter": "1",
            "net.ipv4.conf.all.accept_redirects": "0", "net.ipv4.conf.all.send_redirects": "0",
            "net.ipv6.conf.all.accept_redirects": "0", "kernel.kptr_restrict": "2",
            # Lynis KRNL-6000 (CIS): per network namespace, so a container sets these too
            "net.ipv4.conf.all.accept_source_route": "0", "net.ipv4.conf.default.accept_source_route": "0",
            "net.ipv4.conf.default.accept_redirects": "0", "net.ipv6.conf.default.accept_redirects": "0",
            "net.ipv4.conf.all.log_martians": "1", "net.ipv4.conf.default.log_martians": "1",
            # the kernel's: a VM sets them, a container cannot (docs/SECURITY.md)
            "fs.suid_dumpable": "0", "kernel.dmesg_restrict": "1", "kernel.sysrq": "0",
            "fs.protected_fifos": "2", "fs.protected_regular": "2", "kernel.unprivileged_bpf_disabled": "1",
            "kernel.perf_event_paranoid": "3", "dev.tty.ldisc_autoload": "0"},
    "k3s_server": {"net.ipv4.ip_forward": "1", "vm.max_map_count": "262144", "fs.inotify.max_user_instances": "512"},
    "k3s_agent": {"net.ipv4.ip_forward": "1", "vm.max_map_count": "262144", "fs.inotify.max_user_instances": "512"},
    "postgres": {"vm.swappiness": "10", "vm.overcommit_memory": "2", "vm.overcommit_ratio": "80"},
    "redis": {"vm.overcommit_memory": "1", "net.core.somaxconn": "1024"},
}


def sysctls_for(role: str) -> dict[str, str]:
    return {**SYSCTLS["all"], **SYSCTLS.get(role, {})}


def deploy_user() -> str:
    """The account this deploy logs in with: the only one sshd lets in (AllowUsers)."""
    user = str(host.data.get("ssh_user"))
    if not USER_NAME.fullmatch(user):
        raise OperationError(f"{host.name}: ssh_user {user!r} is not a valid account name")
    return user


@context.role("Base")
def base() -> None:
    role = str(host.data.get("role"))
    in_container = host.get_fact(InContainer)
    server.hostname(name="Set the hostname", hostname=host.name)
    apt_update(name="Update apt lists", cache_time=6 * 3600)
    apt_packages(name="Install base packages", packages=PACKAGES)

    files.put(name="Unattended security upgrades", src=str(TEMPLATES / "20auto-upgrades"),
              dest="/etc/apt/apt.conf.d/20auto-upgrades", mode="644")
    if in_container:
        logger.info(f"{host.name}: time sync not applicable in a container (the machine's clock is used)")
    else:
        systemd.service(name="Time sync", service="systemd-timesyncd", running=True, enabled=True)

    sshd = files.template(name="SSH: keys only, no passwords", src=str(TEMPLATES / "sshd_nornos.conf.j2"),
                          dest="/etc/ssh/sshd_config.d/50-nornos.conf", mode="644", ssh_user=deploy_user())
    server.shell(name="SSH: check the configuration", commands=["sshd -t"], _if=sshd.did_change)
    systemd.service(name="SSH: reload", service="ssh", reloaded=True, _if=sshd.did_change)
    # enabled explicitly: a host must come back with them after any reboot (the backups need cron)
    for service in ("ssh", "cron"):
        systemd.service(name=f"{service}: enabled at boot", service=service, running=True, enabled=True)

    journald = files.put(name="journald limits", src=str(TEMPLATES / "journald_nornos.conf"),
                         dest="/etc/systemd/journald.conf.d/50-nornos.conf", mode="644", create_remote_dir=True)
    systemd.service(name="journald: restart", service="systemd-journald", restarted=True, _if=journald.did_change)

    wanted = sysctls_for(role)
    # in a container only the network namespace's own net.* keys can be set (docs/DESIGN.md, facts)
    applicable = {k: v for k, v in wanted.items() if not in_container or k.startswith("net.")}
    skipped = sorted(set(wanted) - set(applicable))
    if skipped:
        logger.info(f"{host.name}: sysctls not applicable in a container: {', '.join(skipped)}")
    content = "".join(f"{k} = {v}\n" for k, v in sorted(applicable.items()))
    conf = files.put(name="Role sysctls", src=StringIO(f"# managed by nornos-infra (role {role})\n" + content),
                     dest="/etc/sysctl.d/60-nornos.conf", mode="644")
    server.shell(name="Apply sysctls", commands=["sysctl -q -p /etc/sysctl.d/60-nornos.conf"], _if=conf.did_change)

    hardening(in_container)
