"""Host hardening measured by outside auditors (issue 15; Lynis, ssh-audit), called by base:
security updates at the first deploy and reported later, needrestart, unused network
protocols off, no core dumps, umask 027, a login banner, auditd (on machines that can run it)
and the file-integrity check (debsums, daily). What each measure is for and what a
container cannot do: docs/SECURITY.md ("Host hardening").
"""

from __future__ import annotations

import functools

from pyinfra import logger
from pyinfra.context import host
from pyinfra.facts.files import File, Sha256File
from pyinfra.facts.server import Command
from pyinfra.operations import files, server, systemd

from nornos_infra.paths import TEMPLATES
from nornos_infra.roles import aptsh, context
from nornos_infra.roles.facts import InContainer
from nornos_infra.roles.ops import apt_packages

# libpam-tmpdir: a private $TMPDIR per login; libpam-pwquality: strength rules for any password
# set later (no account has one)
PACKAGES = ["needrestart", "debsums", "apt-show-versions", "libpam-tmpdir", "libpam-pwquality"]
STATUS_DIR = "/var/lib/nornos"
FIRST_UPGRADE = f"{STATUS_DIR}/security-upgrades.first"
INTEGRITY_BASELINE = f"{STATUS_DIR}/integrity.baseline"
# services needrestart may name that the deploy restarts by itself: stateless, and sshd keeps
# its open sessions; PostgreSQL, Redis and k3s are only reported (docs/RUNBOOK.md)
SAFE_RESTARTS = ("cron.service", "ssh.service", "systemd-timesyncd.service", "systemd-journald.service",
                 "systemd-logind.service", "unattended-upgrades.service", "nftables.service")
# apt-get -s prints "Inst <pkg> [<old>] (<new> <origin and suite>) [<arch>]"; security ones
# come from the Debian-Security origin (suite <codename>-security)
PENDING_SECURITY = ("apt-get -s -o Debug::NoLocking=1 upgrade 2>/dev/null "
                    "| awk '/^Inst / && /-security/ {print $2}' | sort")
PKGS_SLOT = "NORNOS_PENDING_SECURITY_PACKAGES"  # replaced by the host's list in the install script
LOGIN_DEFS = {"UMASK": "027", "PASS_MAX_DAYS": "365", "PASS_MIN_DAYS": "1", "PASS_WARN_AGE": "14",
              "SHA_CRYPT_MIN_ROUNDS": "5000", "SHA_CRYPT_MAX_ROUNDS": "50000"}

# binutils comes with needrestart (and python3.11): its assembler, run by root only
COMPILERS = ["/usr/bin/x86_64-linux-gnu-as", "/usr/bin/aarch64-linux-gnu-as"]


LOAD_AUDIT_RULES = "augenrules --load"


def login_defs_pattern(key: str) -> str:
    """The line of /etc/login.defs that sets ``key``, commented out or not. pyinfra matches it
    with grep and sed in basic regular expressions, where ``?`` is a literal: ``^#?UMASK``
    matched nothing and every deploy appended a second UMASK line below Debian's 022."""
    return rf"^#*{key}[[:space:]]"


def _keys_regex() -> str:
    return "^(" + "|".join(LOGIN_DEFS) + ")$"


def count_login_defs_command(path: str = "/etc/login.defs") -> str:
    """How many lines of ``path`` set one of LOGIN_DEFS's keys (one each when healthy)."""
    return f"awk '$1 ~ /{_keys_regex()}/' {path} | wc -l"


def dedupe_login_defs_command(path: str = "/etc/login.defs") -> str:
    """Keep the first line that sets each key; hosts deployed before login_defs_pattern's fix
    have a second copy appended at the end."""
    return (f"awk '$1 ~ /{_keys_regex()}/ {{ if (seen[$1]++) next }} {{ print }}' {path} > {path}.nornos "
            f"&& cat {path}.nornos > {path} && rm {path}.nornos")


def pending_security() -> list[str]:
    output = host.get_fact(Command, command=PENDING_SECURITY + " || true") or ""
    return [line.strip() for line in str(output).splitlines() if line.strip()]


def hardening(in_container: bool) -> None:
    """Called by base (its operations show under Base/)."""
    apt_packages(name="Hardening packages (needrestart, debsums, ...)", packages=PACKAGES)
    files.put(name="needrestart: list, never restart from apt", src=str(TEMPLATES / "needrestart-nornos.conf"),
              dest="/etc/needrestart/conf.d/50-nornos.conf", mode="644", create_remote_dir=True)
    _security_updates()

    files.put(name="Unused network protocols and storage buses off", src=str(TEMPLATES / "modprobe-nornos.conf"),
              dest="/etc/modprobe.d/nornos-protocols.conf", mode="644")
    files.put(name="No core dumps for logins", src=str(TEMPLATES / "limits-nornos.conf"),
              dest="/etc/security/limits.d/50-nornos.conf", mode="644")
    files.put(name="No core dumps kept by systemd-coredump", src=str(TEMPLATES / "coredump-nornos.conf"),
              dest="/etc/systemd/coredump.conf.d/50-nornos.conf", mode="644", create_remote_dir=True)
    if int(str(host.get_fact(Command, command=count_login_defs_command()) or 0)) > len(LOGIN_DEFS):
        server.shell(name="login.defs: drop the settings an earlier deploy appended twice",
                     commands=[dedupe_login_defs_command()])
    for key, value in LOGIN_DEFS.items():
        files.line(name=f"login.defs: {key} {value}", path="/etc/login.defs", line=login_defs_pattern(key),
                   replace=f"{key}\t\t{value}")
    files.put(name="Login shells: idle timeout, umask 027, no core dumps", src=str(TEMPLATES / "profile-nornos.sh"),
              dest="/etc/profile.d/nornos.sh", mode="644")
    _restrict_compilers()
    for banner in ("/etc/issue", "/etc/issue.net"):
        files.put(name=f"Login banner: {banner}", src=str(TEMPLATES / "issue.net"), dest=banner, mode="644")

    _auditd(in_container)

    files.directory(name="Status directory", path=STATUS_DIR, mode="755")
    files.put(name="File integrity check", src=str(TEMPLATES / "nornos-integrity-check"),
              dest="/usr/local/sbin/nornos-integrity-check", mode="755")
    files.put(name="File integrity: daily at 04:30", src=str(TEMPLATES / "cron-nornos-integrity"),
              dest="/etc/cron.d/nornos-integrity", mode="644")


def _restrict_compilers() -> None:
    """An assembler on a server helps an intruder build tools; only root may run it. With
    dpkg-statoverride the mode survives package upgrades."""
    for path in COMPILERS:
        # decided at execution: on a first deploy binutils arrives in this run, after planning
        server.shell(name=f"Compiler for root only: {path}",
                     commands=[f"dpkg-statoverride --update --add root root 0750 {path}"],
                     _if=functools.partial(_statoverride_missing, path))


def _statoverride_missing(path: str) -> bool:
    """``path`` exists and has no dpkg-statoverride (asked on the host when called)."""
    answer = host.get_fact(Command, command=f"if [ -e {path} ] && ! dpkg-statoverride --list {path} >/dev/null; "
                                            "then echo missing; else echo ok; fi")
    return str(answer).strip() == "missing"


def _security_updates() -> None:
    """The first deploy applies pending security updates; later ones report them (unattended
    upgrades apply them daily) and never upgrade behind the operator's back."""
    pending = pending_security()
    first = host.get_fact(File, path=FIRST_UPGRADE) is None
    if first:
        # through apt_packages's install script (retries, lock waits, a stale list refreshed once);
        # the list is made on the host at execute time, after this run's apt update
        install = aptsh.install_script(f"{host.name}: security updates", [PKGS_SLOT], 900, 10, 10)
        server.shell(name="Security updates (first deploy)", commands=[
            f"pkgs=$({PENDING_SECURITY}); [ -n \"$pkgs\" ] || exit 0\n" + install.replace(PKGS_SLOT, "$pkgs"),
            f"mkdir -p {STATUS_DIR} && date -u +%Y-%m-%dT%H:%M:%SZ > {FIRST_UPGRADE}",
        ])
        server.shell(name="Restart what the updates require and is safe to restart", commands=[
            "command -v needrestart >/dev/null || exit 0; "
            "for s in $(needrestart -b -r l 2>/dev/null | sed -n 's/^NEEDRESTART-SVC: //p'); do "
            f"case \" {' '.join(SAFE_RESTARTS)} \" in *\" $s \"*) systemctl restart \"$s\";; "
            "*) echo \"needs a restart (maintenance window): $s\";; esac; done"])
    elif pending:
        logger.warning(f"{host.name}: {len(pending)} security updates pending (unattended upgrades apply them "
                       f"daily): {', '.join(pending)}")
    services = host.get_fact(Command, command="command -v needrestart >/dev/null && needrestart -b -r l "
                                              "2>/dev/null | sed -n 's/^NEEDRESTART-SVC: //p' || true") or ""
    waiting = [s for s in str(services).split() if s]
    if waiting and not first:
        logger.warning(f"{host.name}: services running old code (restart in a maintenance window): "
                       f"{', '.join(waiting)}")


def _auditd(in_container: bool) -> None:
    if in_container:
        # the kernel takes audit control only from its initial namespaces: in localcloud's machines
        # auditd fails in a restart loop (docs/SECURITY.md). Package, configuration and rules are
        # installed with the daemon masked, so that the same daemon and rules can run on the
        # machine's kernel from outside (tests/e2e: auditd in the machine's mount namespace).
        files.link(name="auditd: masked (no daemon in a container)", path="/etc/systemd/system/auditd.service",
                   target="/dev/null")
    apt_packages(name="auditd", packages=["auditd"])
    conf = files.put(name="auditd: rotated logs (20 x 50 MB)", src=str(TEMPLATES / "auditd.conf"),
                     dest="/etc/audit/auditd.conf", mode="640")
    if in_container:
        logger.info(f"{host.name}: auditd not applicable in a container (no access to the kernel's audit): "
                    "installed and configured, not running")
        return
    systemd.service(name="auditd running", service="auditd", running=True, enabled=True)
    # auditd refuses a manual restart (RefuseManualStop); SIGHUP makes it re-read its configuration
    server.shell(name="auditd: re-read its configuration", commands=["systemctl kill --signal=SIGHUP auditd"],
                 _if=conf.did_change)


@context.role("Audit rules")
def audit_rules() -> None:
    """The role's audit rules, loaded after every role ran: the directories they watch (the
    PostgreSQL data directory, the backups) exist by then. In a container they are written but
    not loaded (see _auditd)."""
    role = str(host.data.get("role"))
    rules = files.template(name="Audit rules", src=str(TEMPLATES / "audit-nornos.rules.j2"),
                           dest="/etc/audit/rules.d/50-nornos.rules", mode="640", role=role,
                           pg_data="/mnt/postgres-data/pgdata", pg_backups="/mnt/postgres-data/backups",
                           redis_backups="/var/backups/redis")
    if not host.get_fact(InContainer):
        server.shell(name="Audit rules: load", commands=[LOAD_AUDIT_RULES], _if=rules.did_change)


@context.role("File integrity baseline")
def integrity_baseline() -> None:
    """Record the configuration baseline the daily check compares with, after every role has
    written its files; only when the state differs from the recorded one (a no-op otherwise)."""
    server.shell(name="Record the configuration baseline, then check", commands=[
        "/usr/local/sbin/nornos-integrity-check --baseline",
        "/usr/local/sbin/nornos-integrity-check >/dev/null"], _if=_baseline_outdated)


def _baseline_outdated() -> bool:
    """Asked when the operation runs, not when the deploy is planned: the state must include
    what this deploy's roles have just written (decided at planning, a deploy that changed a
    package's configuration file left the daily check failing until the next deploy)."""
    state = host.get_fact(Command, command="test -x /usr/local/sbin/nornos-integrity-check && "
                                           "/usr/local/sbin/nornos-integrity-check --state | sha256sum "
                                           "| cut -d' ' -f1 || echo none")
    return bool(state != host.get_fact(Sha256File, path=INTEGRITY_BASELINE))
