"""What runs where, and what is reachable from where: checked on the live hosts, not assumed.

``python -m nornos_infra.reachability inventories/dev.py [--key KEY] [--user root]``

It logs in as the inventory says (ssh_user, ssh_key) and verifies host keys against the
inventory's known_hosts file, exactly as pyinfra does (nornos_infra/ssh_access.py).

Runs after a deploy (``invoke demo`` and ``invoke check`` print it). For every host: its
role, addresses and the state of the services its role runs. Then TCP probes, each with
the answer the design expects, from three places: this machine (the admin's workstation,
inside admin_cidrs), a k3s node (the cluster, over the private network) and the data
hosts themselves (which must not reach each other). A probe is "open" (connected),
"refused" (the host answered: nothing listens, or its firewall rejects) or "filtered"
(no answer: a firewall drops it). Exit status 1 when any probe differs from the design or
could not run, or a host does not run its role's services (k3s only where it is installed).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from nornos_infra import inventory
from nornos_infra.errors import UserError
from nornos_infra.ssh_access import SshAccess
from nornos_infra.vocabulary import GROUPS, NODE_EXPORTER_PORT, POSTGRES_EXPORTER_PORT, REDIS_EXPORTER_PORT

SERVICES = {
    "k3s_servers": ("ssh", "nftables", "prometheus-node-exporter", "k3s"),
    "k3s_agents": ("ssh", "nftables", "prometheus-node-exporter", "k3s-agent"),
    "postgres": ("ssh", "nftables", "prometheus-node-exporter", "postgresql", "prometheus-postgres-exporter", "cron"),
    "redis": ("ssh", "nftables", "prometheus-node-exporter", "redis-server", "prometheus-redis-exporter", "cron"),
}
# what Prometheus (on the k3s nodes) reads on every host, and on the data hosts
EXPORTERS = {"node exporter": NODE_EXPORTER_PORT, "postgres exporter": POSTGRES_EXPORTER_PORT,
             "redis exporter": REDIS_EXPORTER_PORT}
PROBE_TIMEOUT = 3
HERE = "this machine"


@dataclass(frozen=True)
class Host:
    name: str
    group: str
    public_ip: str
    private_ip: str


@dataclass(frozen=True)
class Probe:
    source: str  # HERE or a host name
    target: str  # a host name
    address: str
    port: int
    what: str
    expect_open: bool


def load_hosts(inventory_file: Path) -> tuple[list[Host], dict[str, Any]]:
    loaded = inventory.load(inventory_file)
    hosts = [Host(h.name, h.group, h.public_ipv4, h.private_ip) for h in loaded.hosts()]
    return hosts, dict(loaded.shared)


def plan(hosts: list[Host], lb_ip: str | None = None, lb_ports: Iterable[int] = ()) -> list[Probe]:
    """The probes and what the design says about each."""
    by_group = {g: [h for h in hosts if h.group == g] for g in GROUPS}
    node = next(iter(by_group["k3s_agents"] + by_group["k3s_servers"]), None)
    probes = [Probe(HERE, h.name, h.public_ip, 22, "SSH from the admin", True) for h in hosts]
    for pg in by_group["postgres"]:
        probes.append(Probe(HERE, pg.name, pg.public_ip, 5432, "PostgreSQL from the internet side", False))
        if node is not None:
            probes.append(Probe(node.name, pg.name, pg.private_ip, 5432, "PostgreSQL from the cluster", True))
        probes += [Probe(r.name, pg.name, pg.private_ip, 5432, "PostgreSQL from the Redis host", False)
                   for r in by_group["redis"]]
    for redis in by_group["redis"]:
        probes.append(Probe(HERE, redis.name, redis.public_ip, 6379, "Redis from the internet side", False))
        if node is not None:
            probes.append(Probe(node.name, redis.name, redis.private_ip, 6379, "Redis from the cluster", True))
        probes += [Probe(p.name, redis.name, redis.private_ip, 6379, "Redis from the PostgreSQL host", False)
                   for p in by_group["postgres"]]
    data_hosts = by_group["postgres"] + by_group["redis"]
    for target in hosts:
        ports = [("node exporter", NODE_EXPORTER_PORT)] + [(name, EXPORTERS[name]) for group, name in
                                              (("postgres", "postgres exporter"), ("redis", "redis exporter"))
                                              if target.group == group]
        for name, port in ports:
            probes.append(Probe(HERE, target.name, target.public_ip, port, f"{name} from the internet side", False))
            if node is not None:
                probes.append(Probe(node.name, target.name, target.private_ip, port, f"{name} from the cluster",
                                    True))
            probes += [Probe(other.name, target.name, target.private_ip, port, f"{name} from a data host",
                             False) for other in data_hosts if other.name != target.name]
    if lb_ip:  # the one public entry: it accepts whether or not the cluster behind it is up yet
        probes += [Probe(HERE, "load balancer", lb_ip, int(port), "the load balancer from the internet", True)
                   for port in lb_ports]
    return probes


class Remote:
    def __init__(self, user: str, key: Path | None, ssh_options: list[str]) -> None:
        self.user, self.key, self.options = user, key, ssh_options

    def run(self, address: str, command: str) -> subprocess.CompletedProcess[str]:
        args = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", *self.options]
        if self.key is not None:
            args += ["-i", str(self.key)]
        return subprocess.run([*args, f"{self.user}@{address}", command], capture_output=True, text=True,
                              timeout=60, check=False)


def probe_here(address: str, port: int) -> str:
    try:
        with socket.create_connection((address, port), timeout=PROBE_TIMEOUT):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "filtered"


# stderr kept in a variable: probes from one host run at the same time
PROBE_SCRIPT = ("err=$(timeout {t} bash -c '</dev/tcp/{a}/{p}' 2>&1); rc=$?; "
                "if [ $rc = 0 ]; then echo open; elif echo \"$err\" | grep -qi refused; then echo refused; "
                "else echo filtered; fi")
RESULTS = ("open", "refused", "filtered")


def run_probe(probe: Probe, hosts: dict[str, Host], remote: Remote) -> str:
    if probe.source == HERE:
        return probe_here(probe.address, probe.port)
    result = remote.run(hosts[probe.source].public_ip,
                        PROBE_SCRIPT.format(t=PROBE_TIMEOUT, a=probe.address, p=probe.port))
    return result.stdout.strip() or f"unknown ({result.stderr.strip()[:60]})"


# k3s runs only where its binary could be installed (not on offline localcloud hosts): shown, not required
OPTIONAL_UNITS = ("k3s", "k3s-agent")


def service_states(host: Host, remote: Remote) -> tuple[str, bool]:
    """The role's units and their states, and whether every required one is active."""
    units = SERVICES[host.group]
    result = remote.run(host.public_ip, "systemctl is-active " + " ".join(units) + " 2>/dev/null; true")
    states = result.stdout.split()
    if len(states) != len(units):
        return "unreachable over SSH", False
    ok = all(s == "active" for u, s in zip(units, states, strict=True) if u not in OPTIONAL_UNITS)
    return ", ".join(f"{u} {s}" for u, s in zip(units, states, strict=True)), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nornos_infra.reachability", description=__doc__.splitlines()[0])
    parser.add_argument("inventory", type=Path)
    parser.add_argument("--key", type=Path, help="SSH private key for the hosts (default: the inventory's ssh_key)")
    parser.add_argument("--user", help="SSH user (default: the inventory's ssh_user)")
    parser.add_argument("--ssh-option", action="append", default=[], metavar="OPT",
                        help="extra ssh -o option, e.g. ConnectTimeout=10 (repeatable; wins over the inventory)")
    args = parser.parse_args(argv)
    try:
        hosts, common = load_hosts(args.inventory)
    except UserError as exc:
        print(exc, file=sys.stderr)
        return 1
    access = SshAccess.from_data(common, key=args.key, user=args.user)
    # ssh keeps the first value of an option: the caller's own come first
    remote = Remote(access.user, None, [x for o in args.ssh_option for x in ("-o", o)] + access.openssh_options())
    by_name = {h.name: h for h in hosts}
    probes = plan(hosts, common.get("lb_public_ipv4"), common.get("lb_service_ports") or [])
    with ThreadPoolExecutor(max_workers=16) as pool:
        states = list(pool.map(lambda h: service_states(h, remote), hosts))
        results = list(pool.map(lambda p: run_probe(p, by_name, remote), probes))

    console = Console() if Console().is_terminal else Console(width=160)
    where = Table(title="What runs where")
    for column in ("host", "group", "public", "private", "services"):
        where.add_column(column)
    down = 0
    for host, (state, ok) in zip(hosts, states, strict=True):
        down += not ok
        where.add_row(host.name, host.group, host.public_ip, host.private_ip,
                      state if ok else f"[bold red]{state}[/]")
    console.print(where)
    if common.get("lb_public_ipv4"):
        print(f"load balancer {common['lb_public_ipv4']} (private {common.get('lb_private_ip')}): "
              f"ports {', '.join(str(p) for p in common.get('lb_service_ports', []))} to the k3s nodes")

    reach = Table(title="What is reachable from where")
    for column in ("from", "to", "port", "what", "result", "design"):
        reach.add_column(column)
    wrong = 0
    for probe, result in zip(probes, results, strict=True):
        # a probe that could not run proves nothing: it counts as a surprise
        as_designed = result in RESULTS and (result == "open") == probe.expect_open
        wrong += not as_designed
        reach.add_row(probe.source, f"{probe.target} {probe.address}", str(probe.port), probe.what, result,
                      "ok" if as_designed else "[bold red]UNEXPECTED[/]")
    console.print(reach)
    if down:
        print(f"{down} of {len(hosts)} hosts do not run their role's services (or cannot be reached)",
              file=sys.stderr)
    if wrong:
        print(f"{wrong} of {len(probes)} probes differ from the design (or could not run)", file=sys.stderr)
    if down or wrong:
        return 1
    print(f"all {len(probes)} probes as designed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
