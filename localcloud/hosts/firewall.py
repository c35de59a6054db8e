"""Cloud firewalls, enforced outside the machines: one nft table on this machine.

Hetzner filters a server's public interface in its network, not in the guest, statefully:
once any firewall applies to a server, inbound traffic is dropped unless a rule allows it;
outbound traffic is allowed unless the server's firewalls hold outbound rules, in which
case only what they allow leaves; replies to allowed traffic always pass; the rules of
all firewalls on a server add up. Private networks are not filtered.

Here every public interface hangs on the ``lc-pub`` bridge, and the kernel hands bridged
IP traffic to the inet hooks (bridge-nf-call-iptables, on by default), with conntrack. So
one ``inet`` table, keyed on the servers' public addresses, filters:
- forward: traffic between servers and from other "internet hosts" on lc-pub;
- output: traffic from this machine (the admin's workstation) to servers;
- input: traffic from servers to this machine (outbound rules).
Private IPs never match, so private networks pass untouched. The machines' own nftables
live in their own namespaces and cannot see or change this table.

The whole table is replaced in one ``nft -f`` transaction on every change.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path

from localcloud.hosts.system import NFT_PREFIX, HostError, run
from localcloud.machines import Guarded, Rule

TABLE = f"{NFT_PREFIX}_firewalls"
FAMILY = "inet"
BRIDGE_NF_SYSCTLS = (Path("/proc/sys/net/bridge/bridge-nf-call-iptables"),
                     Path("/proc/sys/net/bridge/bridge-nf-call-ip6tables"))
# NDP and router discovery are link plumbing, not traffic a Hetzner firewall sees
_ICMPV6_LINK = "nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert"
_L4 = {"icmp": ("icmp", "ipv6-icmp"), "esp": ("esp", "esp"), "gre": ("gre", "gre")}


def _match_ips(ips: Iterable[str], family: int, peer: str) -> str | None:
    """``ip saddr { ... }`` for the rule's CIDRs of one family; None when it has none."""
    nets = [str(ipaddress.ip_network(i, strict=False)) for i in ips]
    nets = [n for n in nets if ipaddress.ip_network(n).version == family]
    if not nets:
        return None
    keyword = "ip" if family == 4 else "ip6"
    return f"{keyword} {peer} {{ {', '.join(nets)} }}"


def _match_protocol(rule: Rule, family: int) -> str:
    if rule.protocol in ("tcp", "udp"):
        if rule.port in (None, "any"):
            return f"meta l4proto {rule.protocol}"
        return f"{rule.protocol} dport {rule.port}"
    return f"meta l4proto {_L4[rule.protocol][0 if family == 4 else 1]}"


def _rule_lines(rules: Sequence[Rule], peer: str) -> list[str]:
    """Allowed traffic returns to the dispatch chain (the peer's own checks follow there)."""
    lines = []
    for rule in rules:
        for family in (4, 6):
            ips = _match_ips(rule.ips, family, peer)
            if ips is not None:
                lines.append(f"{ips} {_match_protocol(rule, family)} return")
    return lines


def _chain(name: str, body: list[str]) -> list[str]:
    return [f"  chain {name} {{", *(f"    {line}" for line in body), "  }"]


def ruleset(guarded: Iterable[Guarded]) -> str:
    """The nft table for these servers (``nft -f`` input that replaces the table atomically)."""
    servers = sorted(guarded, key=lambda g: g.server_id)
    dispatch = [
        "ct state established,related accept",
        f"icmpv6 type {{ {_ICMPV6_LINK} }} accept",
    ]
    chains: list[str] = []
    for g in servers:
        inbound, outbound = f"in_{g.server_id}", f"out_{g.server_id}"
        for keyword, address in (("ip", g.ipv4), ("ip6", g.ipv6_net)):
            if address is None:
                continue
            dispatch.append(f"{keyword} daddr {address} jump {inbound}")
            if g.outbound:
                dispatch.append(f"{keyword} saddr {address} jump {outbound}")
        chains += _chain(inbound, [*_rule_lines(g.inbound, "saddr"), "drop"])
        if g.outbound:
            chains += _chain(outbound, [*_rule_lines(g.outbound, "daddr"), "drop"])
    lines = [f"table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}", f"table {FAMILY} {TABLE} {{"]
    for hook in ("forward", "output", "input"):
        lines += _chain(hook, [f"type filter hook {hook} priority filter; policy accept;", "jump dispatch"])
    lines += _chain("dispatch", dispatch)
    lines += chains
    lines.append("}")
    return "\n".join(lines) + "\n"


def ensure_bridge_filtering() -> None:
    """Bridged traffic must reach the inet hooks: br_netfilter (built in, or loaded here), with
    its sysctls at 1 (their default once it is there). Checked when real hosts start, so that
    no firewall can silently fail open later."""
    if not BRIDGE_NF_SYSCTLS[0].exists():
        with contextlib.suppress(HostError):  # no modprobe: the check below says what is missing
            run(["modprobe", "br_netfilter"], check=False)  # a module on stock Debian kernels
    for path in BRIDGE_NF_SYSCTLS:
        try:
            if path.read_text().strip() != "1":
                path.write_text("1\n")
        except OSError as exc:
            raise HostError(f"cloud firewalls need bridge netfilter ({path}: {exc.strerror}); load it with "
                            "`modprobe br_netfilter` (package kmod)") from exc


def apply(guarded: Iterable[Guarded]) -> None:
    """Replace the table with these servers' filters; no server guarded: no table."""
    servers = list(guarded)
    if not servers:
        remove()
        return
    ensure_bridge_filtering()
    proc = run(["nft", "-f", "-"], input=ruleset(servers), check=False)
    if proc.returncode != 0:
        raise HostError(f"nft refused the cloud firewall table: {proc.stderr.strip()[:300]}")


def remove() -> None:
    run(["nft", "delete", "table", FAMILY, TABLE], check=False)
