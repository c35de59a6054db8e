"""The nft table that enforces cloud firewalls (localcloud/hosts/firewall.py): what it says,
and that nft itself accepts it (``nft -c``, when nft and root are here)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from localcloud.hosts.firewall import ruleset
from localcloud.machines import Guarded, Rule


def chain(text: str, name: str) -> list[str]:
    """The lines of one chain (chains end with a line holding only a closing brace)."""
    body = text.split(f"chain {name} {{\n")[1].split("\n  }")[0]
    return [line.strip() for line in body.splitlines()]

DB = Guarded(5, "198.51.100.5", "2001:db8:0:5::/64", (
    Rule("in", "tcp", "22", ("198.51.100.1/32", "2001:db8::/32")),
    Rule("in", "udp", "any", ("10.0.0.0/8",)),
    Rule("in", "icmp", None, ("0.0.0.0/0", "::/0")),
))
EDGE = Guarded(7, "198.51.100.7", None, (
    Rule("in", "tcp", "80-85", ("0.0.0.0/0",)),
    Rule("out", "tcp", "443", ("0.0.0.0/0", "::/0")),
    Rule("in", "gre", None, ("192.0.2.0/24",)),
))


def test_inbound_rules_per_family_then_drop() -> None:
    text = ruleset([DB])
    assert chain(text, "in_5") == [
        "ip saddr { 198.51.100.1/32 } tcp dport 22 return",
        "ip6 saddr { 2001:db8::/32 } tcp dport 22 return",
        "ip saddr { 10.0.0.0/8 } meta l4proto udp return",
        "ip saddr { 0.0.0.0/0 } meta l4proto icmp return",
        "ip6 saddr { ::/0 } meta l4proto ipv6-icmp return",
        "drop",
    ]
    assert "ip daddr 198.51.100.5 jump in_5" in text and "ip6 daddr 2001:db8:0:5::/64 jump in_5" in text
    assert "out_5" not in text  # no outbound rules: outbound is free


def test_outbound_rules_make_outbound_closed_and_replies_always_pass() -> None:
    text = ruleset([EDGE, DB])
    assert "ip saddr 198.51.100.7 jump out_7" in text
    assert chain(text, "out_7") == ["ip daddr { 0.0.0.0/0 } tcp dport 443 return",
                                    "ip6 daddr { ::/0 } tcp dport 443 return", "drop"]
    assert chain(text, "dispatch")[0] == "ct state established,related accept"
    assert text.index("in_5") < text.index("in_7")  # stable order: by server id


def test_the_table_is_replaced_in_one_transaction() -> None:
    lines = ruleset([DB]).splitlines()
    assert lines[:3] == ["table inet localcloud_firewalls", "delete table inet localcloud_firewalls",
                         "table inet localcloud_firewalls {"]
    for hook in ("forward", "output", "input"):
        assert f"type filter hook {hook} priority filter; policy accept;" in "\n".join(lines)


@pytest.mark.skipif(shutil.which("nft") is None or os.geteuid() != 0, reason="needs nft and root")
def test_nft_accepts_the_table() -> None:
    check = subprocess.run(["nft", "-c", "-f", "-"], input=ruleset([DB, EDGE]), capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
