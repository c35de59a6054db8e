"""Issue 10: every bad input is refused before the first write.

A table of bad inputs to ``provision.py`` (env files, flags, environment variables, endpoints
and tokens), each run as people run it (a subprocess) against a real localcloud. Each must be
refused with ONE line naming the problem and the fix, exit status != 0, no traceback, within
30 s, and ZERO writes, counted from localcloud's request log (``/_localcloud/requests``). The
valid edge cases at the end must be accepted (a plan, exit 0, no writes).

Cases name the finding of issue 10 they guard where they have one (``F5`` ...).
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import READONLY_TOKEN, TOKEN, LocalCloud

ROOT = Path(__file__).resolve().parents[2]
ADMIN_IP = "198.51.100.1"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpdS0EDjkyN4OiDC3rZXBe8hnIqg8S5EFTGfoBfuoeJ admin@nornos"


def _openssh_public(key: Any, comment: str) -> str:
    from cryptography.hazmat.primitives import serialization

    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} {comment}"


def _keys() -> tuple[str, str]:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    return (_openssh_public(rsa.generate_private_key(65537, 1024), "weak@nornos"),
            _openssh_public(ec.generate_private_key(ec.SECP256R1()), "ok@nornos"))


RSA_1024, ECDSA = _keys()
PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
MUTATING = ("POST", "PUT", "DELETE", "PATCH")
LIMIT = 30.0  # seconds a refusal may take, a dead endpoint included


def base_env(name: str = "dev") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "environments" / "dev.yaml").read_text())
    data["name"] = name
    data["ssh_keys"] = [{"name": "admin", "public_key": KEY}]
    data["admin_cidrs"] = [f"{ADMIN_IP}/32"]
    return data


Mutate = Callable[[dict[str, Any]], Any]


@dataclass
class Case:
    id: str
    needles: tuple[str, ...]  # all in the error line: the problem, and the fix
    mutate: Mutate | None = None  # changes to the env file's data
    text: bytes | None = None  # the env file's raw bytes instead
    args: tuple[str, ...] = ("dev",)
    vars: dict[str, str | None] = field(default_factory=dict)  # environment (None: unset)
    endpoint: str | None = None  # HCLOUD_ENDPOINT, with {port} (localcloud) and {fake:<kind>} filled in
    files: dict[str, bytes] = field(default_factory=dict)  # extra files in the temp dir, {tmp} in values
    exit: int | None = None  # exact status when it matters (2: argparse)
    writes: int = 0  # mutating requests allowed (only the refused permission probe ever)


def _set(path: str, value: Any) -> Mutate:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else node[int(part)]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _del(path: str) -> Mutate:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        del node[last]
    return mutate


DEV_TEXT = (ROOT / "environments" / "dev.yaml").read_text()


def dev_text(replace: str, by: str) -> bytes:
    """dev.yaml's own text with one edit, the key and admin CIDR made usable."""
    assert replace in DEV_TEXT, replace
    text = DEV_TEXT.replace(replace, by, 1).replace("203.0.113.0/24", f"{ADMIN_IP}/32")
    return text.replace("    public_key_env: SSH_PUBLIC_KEY", f"    public_key: {KEY}").replace(
        "    public_key_file: ~/.ssh/id_ed25519.pub  # (relative paths start in environments/)\n", "").encode()


CASES: list[Case] = [
    # -- env files: reading (F7) and YAML (F6) ----------------------------------------------
    Case("F7 env file not UTF-8", ("not UTF-8", "save it as UTF-8"), text=b"name: dev\nlocation: fsn\xff1\n"),
    Case("F7 env file is a directory", ("is a directory", "environments/<env>.yaml"), text=b"<dir>"),
    Case("env file missing", ("file not found", "environments/<env>.yaml"), text=b"<none>"),
    Case("env file empty", ("must be a YAML mapping",), text=b""),
    Case("env file a list", ("must be a YAML mapping",), text=b"- name: dev\n"),
    Case("env file a scalar", ("must be a YAML mapping",), text=b"dev\n"),
    Case("env file not YAML", ("not valid YAML", "line"), text=b"name: dev\npools: {control: [\n"),
    Case("env file tab indent", ("not valid YAML",), text=b"name: dev\npools:\n\tworkers: 1\n"),
    Case("env file nests too deeply", ("nests too deeply",), text=b"name: " + b"[" * 5000 + b"]" * 5000 + b"\n"),
    Case("F6 duplicate pool", ("'workers' is given twice", "keep one"),
         text=dev_text("  agents:", "  workers:       {role: k3s_agent, server_type: cx23, count: 5}\n  agents:")),
    Case("F6 duplicate top-level key", ("'location' is given twice", "keep one"),
         text=dev_text("fallback_locations:", "location: nbg1\nfallback_locations:")),
    Case("F6 duplicate key in a pool", ("'count' is given twice",),
         text=dev_text("server_type: cx23, count: 1}", "server_type: cx23, count: 1, count: 3}")),
    # -- env files: the spec (F9 and the rest) -------------------------------------------------
    Case("F9 count true", ("pools.workers.count", "valid integer"), _set("pools.workers.count", True)),
    Case("F9 count a string", ("pools.workers.count", "valid integer"), _set("pools.workers.count", "2")),
    Case("F9 count a float", ("pools.workers.count", "valid integer"), _set("pools.workers.count", 2.0)),
    Case("count negative", ("pools.workers.count", "greater than or equal to 0"), _set("pools.workers.count", -1)),
    Case("count over 50", ("pools.workers.count", "less than or equal to 50"), _set("pools.workers.count", 51)),
    Case("F9 volume_gb a string", ("volume_gb", "valid integer"), _set("pools.postgres.volume_gb", "50")),
    Case("F9 pool labels never used", ("pools.workers.labels", "unknown key"),
         _set("pools.workers.labels", {"team": "x"})),
    Case("F9 taint without effect", ("pools.agents.taints", "key[=value]:Effect"),
         _set("pools.agents.taints", ["nornos.io/agents=true"])),
    Case("F9 taint with a bad effect", ("pools.agents.taints", "NoSchedule"),
         _set("pools.agents.taints", ["dedicated=x:Sometimes"])),
    Case("F9 taint with a space", ("pools.agents.taints",), _set("pools.agents.taints", ["a b:NoSchedule"])),
    Case("F9 pool name with a newline", ("pools.'cache\\n'", "lowercase letters"),
         lambda d: d["pools"].update({"cache\n": {"role": "k3s_agent", "server_type": "cx23", "count": 1}})),
    Case("pool name in capitals", ("pools.Cache", "lowercase letters"),
         lambda d: d["pools"].update({"Cache": {"role": "k3s_agent", "server_type": "cx23", "count": 1}})),
    Case("pool name with an underscore", ("pools.big_workers", "lowercase"),
         lambda d: d["pools"].update({"big_workers": {"role": "k3s_agent", "server_type": "cx23", "count": 1}})),
    Case("F9 unknown location", ("'xyz1' is not a Hetzner location", "fsn1"), _set("location", "xyz1")),
    Case("F9 unknown fallback location", ("fallback_locations", "'nbg9' is not a Hetzner location"),
         _set("fallback_locations", ["nbg9"])),
    Case("non-EU location with patient data", ("ash is outside the EU", "GDPR"), _set("location", "ash")),
    Case("unknown location without patient data", ("location", "not a Hetzner location"),
         lambda d: d.update(patient_data=False, location="xyz1", fallback_locations=[])),
    Case("patient_data a string", ("patient_data", "valid boolean"), _set("patient_data", "yes")),
    Case("protection a string", ("protection", "valid boolean"), _set("protection", "true")),
    Case("kube_api a number", ("load_balancer.kube_api", "valid boolean"), _set("load_balancer.kube_api", 1)),
    Case("LB service 6443", ("6443 is the Kubernetes API", "kube_api"), _set("load_balancer.services", [80, 6443])),
    Case("F1 LB service 22", ("22 is SSH", "remove it"), _set("load_balancer.services", [22, 80, 443])),
    Case("LB service a string", ("load_balancer.services.0", "valid integer"), _set("load_balancer.services", ["80"])),
    Case("LB service out of range", ("load_balancer.services.1", "65535"), _set("load_balancer.services", [80, 70000])),
    Case("unknown top-level key", ("locaton", "unknown key", "known keys here"), _set("locaton", "fsn1")),
    Case("name does not match the file", ("must match the file name",), _set("name", "prod")),
    Case("public network range", ("network.ip_range", "not a private"),
         lambda d: d["network"].update(ip_range="8.8.0.0/16", subnet="8.8.1.0/24")),
    Case("subnet outside the range", ("network.subnet", "not inside"), _set("network.subnet", "10.9.1.0/24")),
    Case("even control planes", ("2 control planes", "odd"), _set("pools.control-plane.count", 2)),
    Case("no control plane", ("no k3s_server pool",), _set("pools.control-plane.count", 0)),
    Case("two postgres servers", ("at most one postgres",), _set("pools.postgres.count", 2)),
    Case("postgres without a volume", ("volume_gb", "data volume size"), _del("pools.postgres.volume_gb")),
    Case("a volume on redis", ("pools.redis.volume_gb", "only the postgres pool"), _set("pools.redis.volume_gb", 10)),
    Case("bad bucket name", ("backups.s3_bucket", "bucket name"), _set("backups.s3_bucket", "Bad_Bucket")),
    Case("plain http object storage", ("backups.s3_endpoint", "https://"),
         lambda d: d["backups"].update(s3_bucket="nornos-dev", s3_endpoint="http://s3.example")),
    # -- admin networks (F2) ---------------------------------------------------------------------
    Case("admin 0.0.0.0/0", ("0.0.0.0/0 opens SSH", "list your admin networks"), _set("admin_cidrs", ["0.0.0.0/0"])),
    Case("F2 admin two halves of the internet", ("0.0.0.0/0 opens SSH", "list your admin networks"),
         _set("admin_cidrs", ["0.0.0.0/1", "128.0.0.0/1"])),
    Case("admin ::/0", ("::/0 opens SSH",), _set("admin_cidrs", [f"{ADMIN_IP}/32", "::/0"])),
    Case("F2 admin a /8", ("more than a /16", "--allow-wide-admin-cidrs"), _set("admin_cidrs", ["10.0.0.0/8"])),
    Case("F2 admin many /17s", ("more than a /16", "--allow-wide-admin-cidrs"),
         _set("admin_cidrs", [f"10.{i}.0.0/17" for i in range(0, 6, 2)])),
    Case("F2 admin a /32 of IPv6", ("more than a /48", "--allow-wide-admin-cidrs"),
         _set("admin_cidrs", [f"{ADMIN_IP}/32", "2a01:4f8::/32"])),
    Case("admin host bits", ("has host bits set", "198.51.100.0/24"), _set("admin_cidrs", ["198.51.100.1/24"])),
    Case("admin not a network", ("admin_cidrs", "not a network"), _set("admin_cidrs", ["office"])),
    Case("admin empty", ("admin_cidrs", "must not be empty"), _set("admin_cidrs", [])),
    Case("admin missing", ("admin_cidrs", "required key is missing"), _del("admin_cidrs")),
    # -- SSH keys, parsed here (F5) ----------------------------------------------------------------
    Case("F5 garbage public key", ("ssh_keys.admin.public_key", "not an SSH public key", "ssh-keygen"),
         _set("ssh_keys.0.public_key", "ssh-ed25519 AAAAgarbagegarbagegarbagegarbage")),
    Case("F5 public key of the wrong type", ("not a ssh-ed25519 key",),
         _set("ssh_keys.0.public_key", "ssh-ed25519 " + ECDSA.split()[1])),
    Case("public_key_file /etc/hostname", ("/etc/hostname", "not an SSH public key"),
         _set("ssh_keys.0", {"name": "admin", "public_key_file": "/etc/hostname"})),
    Case("public_key_file missing", ("cannot read", "ssh-keygen -t ed25519"),
         _set("ssh_keys.0", {"name": "admin", "public_key_file": "/nonexistent/key.pub"})),
    Case("public_key_file a directory", ("cannot read",),
         _set("ssh_keys.0", {"name": "admin", "public_key_file": "/"})),
    Case("F5 a pasted private key", ("PRIVATE key", ".pub"), _set("ssh_keys.0.public_key", PRIVATE)),
    Case("F5 RSA of 1024 bits", ("1024 bits", "2048"), _set("ssh_keys.0.public_key", RSA_1024)),
    Case("public_key_env not a name", ("public_key_env", "not an environment variable name"),
         _set("ssh_keys.0", {"name": "admin", "public_key_env": "SSH KEY"})),
    Case("ssh_keys empty", ("ssh_keys", "must not be empty"), _set("ssh_keys", [])),
    Case("public key empty", ("public_key", "is empty"), _set("ssh_keys.0.public_key", " ")),
    Case("ssh key names repeat", ("names must be unique",),
         _set("ssh_keys", [{"name": "admin", "public_key": KEY}, {"name": "admin", "public_key": ECDSA}])),
    # -- the live catalogue (F5: checked before any write) -------------------------------------------
    Case("catalogue: unknown server type", ("cx999",), _set("pools.workers.server_type", "cx999")),
    Case("catalogue: unknown image", ("debian-99", "hcloud image list"), _set("pools.workers.image", "debian-99")),
    Case("catalogue: unknown LB type", ("lb99",), _set("load_balancer.type", "lb99")),
    # -- the command line (F7, F8) ----------------------------------------------------------------
    Case("F8 env name is a path", ("'../x' is not an environment name", "environments/<env>.yaml"), args=("../x",)),
    Case("F8 env name with a slash", ("not an environment name",), args=("nodir/x",)),
    Case("F7 env name of 300 characters", ("not an environment name",), args=("d" * 300,)),
    Case("env name in capitals", ("'Dev' is not an environment name",), args=("Dev",)),
    Case("env name with a newline", ("not an environment name",), args=("dev\n",)),
    Case("env name empty", ("not an environment name",), args=("",)),
    Case("env name ending in a dash", ("not an environment name",), args=("dev-",)),
    Case("no env name", ("arguments are required: env", "--help"), args=(), exit=2),
    Case("unknown flag", ("unrecognized arguments: --colour", "--help"), args=("dev", "--colour"), exit=2),
    Case("concurrency zero", ("--concurrency must be between 1 and 64", "--help"),
         args=("dev", "--concurrency", "0"), exit=2),
    Case("concurrency not a number", ("--concurrency", "invalid int value"),
         args=("dev", "--concurrency", "many"), exit=2),
    Case("concurrency huge", ("--concurrency must be between 1 and 64",), args=("dev", "--concurrency", "100000"),
         exit=2),
    Case("admin ip not an address", ("--admin-ip", "not an IP address"), args=("dev", "--admin-ip", "home"), exit=2),
    Case("env dir missing", ("file not found",), args=("dev", "--env-dir", "/nonexistent")),
    # -- environment variables -------------------------------------------------------------------
    Case("F7 endpoint not a URL", ("HCLOUD_ENDPOINT", "not a URL", "https://api.hetzner.cloud/v1"),
         endpoint="not a url"),
    Case("endpoint ftp", ("not an http(s) URL",), endpoint="ftp://127.0.0.1/v1"),
    Case("endpoint without a host", ("not an http(s) URL with a host",), endpoint="https:///v1"),
    Case("endpoint with a bad port", ("bad host or port",), endpoint="http://127.0.0.1:99999/v1"),
    Case("endpoint with a bad IPv6 host", ("not a URL",), endpoint="http://[::1/v1"),
    Case("endpoint with credentials", ("must not hold credentials", "HCLOUD_TOKEN"),
         endpoint="http://user:pw@127.0.0.1:{port}/v1"),
    Case("endpoint with a query", ("must not have a query",), endpoint="http://127.0.0.1:{port}/v1?x=1"),
    Case("endpoint plain http elsewhere", ("plain http", "unencrypted", "use https"),
         endpoint="http://192.0.2.10:8700/v1"),
    Case("endpoint with a control character", ("not a URL",), endpoint="http://127.0.0.1:{port}/v1\x07"),
    Case("poll interval not a number", ("NORNOS_POLL_INTERVAL", "unset it or fix it"),
         vars={"NORNOS_POLL_INTERVAL": "fast"}),
    Case("poll interval zero", ("NORNOS_POLL_INTERVAL",), vars={"NORNOS_POLL_INTERVAL": "0"}),
    Case("poll interval infinite", ("NORNOS_POLL_INTERVAL",), vars={"NORNOS_POLL_INTERVAL": "1e999"}),
    Case("overrides file missing", ("NORNOS_OVERRIDES", "unset NORNOS_OVERRIDES or fix"),
         vars={"NORNOS_OVERRIDES": "/nonexistent/overrides.yaml"}),
    Case("overrides a directory", ("NORNOS_OVERRIDES", "is a directory"), vars={"NORNOS_OVERRIDES": "/"}),
    Case("overrides not UTF-8", ("NORNOS_OVERRIDES", "not UTF-8"), vars={"NORNOS_OVERRIDES": "{tmp}/o.yaml"},
         files={"o.yaml": b"admin_cidrs: [\xff]\n"}),
    Case("overrides repeat a key", ("NORNOS_OVERRIDES", "'admin_cidrs' is given twice"),
         vars={"NORNOS_OVERRIDES": "{tmp}/o.yaml"},
         files={"o.yaml": b"admin_cidrs: [198.51.100.1/32]\nadmin_cidrs: [0.0.0.0/0]\n"}),
    Case("overrides set the name", ("must not set name",), vars={"NORNOS_OVERRIDES": "{tmp}/o.yaml"},
         files={"o.yaml": b"name: prod\n"}),
    # a machine-local file must not switch a guard off (before: accepted, and production could move to ash)
    Case("overrides lift the EU guard", ("must not set patient_data: whether the EU-only location guard applies",),
         args=("production",), vars={"NORNOS_OVERRIDES": "{tmp}/o.yaml"},
         files={"o.yaml": b"patient_data: false\nlocation: ash\n"}),
    Case("overrides lift delete protection", ("must not set protection", "--force"),
         args=("production",), vars={"NORNOS_OVERRIDES": "{tmp}/o.yaml"}, files={"o.yaml": b"protection: false\n"}),
    Case("overrides for another endpoint", ("is for http://127.0.0.1:1/v1", "unset NORNOS_OVERRIDES"),
         vars={"NORNOS_OVERRIDES": "{tmp}/o.yaml"}, files={"o.yaml": b"endpoint: http://127.0.0.1:1/v1\n"}),
    Case("overrides widen admin_cidrs", ("0.0.0.0/0 opens SSH",), vars={"NORNOS_OVERRIDES": "{tmp}/o.yaml"},
         files={"o.yaml": b"admin_cidrs: [0.0.0.0/1, 128.0.0.0/1]\n"}),
    Case("SSH_PUBLIC_KEY garbage", ("$SSH_PUBLIC_KEY", "not an SSH public key"),
         _set("ssh_keys.0", {"name": "admin", "public_key_env": "SSH_PUBLIC_KEY"}), vars={"SSH_PUBLIC_KEY": "hello"}),
    Case("SSH_PUBLIC_KEY a private key", ("$SSH_PUBLIC_KEY", "PRIVATE key"),
         _set("ssh_keys.0", {"name": "admin", "public_key_env": "SSH_PUBLIC_KEY"}), vars={"SSH_PUBLIC_KEY": PRIVATE}),
    Case("SSH_PUBLIC_KEY two keys", ("$SSH_PUBLIC_KEY", "not an SSH public key"),
         _set("ssh_keys.0", {"name": "admin", "public_key_env": "SSH_PUBLIC_KEY"}),
         vars={"SSH_PUBLIC_KEY": f"{KEY}\n{ECDSA}"}),
    # -- tokens --------------------------------------------------------------------------------
    Case("no token", ("no API token", "HCLOUD_TOKEN"), vars={"HCLOUD_TOKEN": None}),
    Case("empty token", ("no API token", "HCLOUD_TOKEN"), vars={"HCLOUD_TOKEN": ""}),
    Case("wrong token", ("rejected the token", "HCLOUD_TOKEN"), vars={"HCLOUD_TOKEN": "wrong-token"}),
    Case("token with a newline", ("not an API token", "copy the token again"), vars={"HCLOUD_TOKEN": "abc\ndef"}),
    Case("token with a space", ("not an API token",), vars={"HCLOUD_TOKEN": "abc def"}),
    Case("token not ASCII", ("not an API token",), vars={"HCLOUD_TOKEN": "tökén"}),
    Case("token far too long", ("not an API token", "longer than 1024"), vars={"HCLOUD_TOKEN": "t" * 5000}),
    Case("F5 read-only token", ("can only read", "read-write token", "--dry-run works"),
         vars={"HCLOUD_TOKEN": READONLY_TOKEN}, writes=1),
    Case("hcloud CLI config broken", ("no API token",), vars={"HCLOUD_TOKEN": None, "HCLOUD_CONFIG": "{tmp}/cli.toml"},
         files={"cli.toml": b"active_context = [\n"}),
    # -- endpoints (F4: timeouts, no retries of permanent errors, <= 30 s, one line naming it) ---------
    Case("F4 connection refused", ("HCLOUD_ENDPOINT http://127.0.0.1:{dead}/v1", "cannot be reached"),
         endpoint="http://127.0.0.1:{dead}/v1"),
    Case("F4 https on an http port", ("HCLOUD_ENDPOINT https://127.0.0.1:{port}/v1", "TLS"),
         endpoint="https://127.0.0.1:{port}/v1"),
    Case("F4 accepts and never answers", ("HCLOUD_ENDPOINT http://127.0.0.1:{hang}/v1", "did not answer in time"),
         endpoint="http://127.0.0.1:{hang}/v1"),
    Case("F9 200 with a body that is not JSON", ("HCLOUD_ENDPOINT", "HTTP 200", "/v1"),
         endpoint="http://127.0.0.1:{fake:text}/v1"),
    Case("an HTML 404", ("HCLOUD_ENDPOINT", "HTTP 404"), endpoint="http://127.0.0.1:{fake:html404}/v1"),
    Case("an HTML 502", ("HCLOUD_ENDPOINT", "HTTP 502"), endpoint="http://127.0.0.1:{fake:html502}/v1"),
    Case("JSON that is not an object", ("HCLOUD_ENDPOINT", "not an object"),
         endpoint="http://127.0.0.1:{fake:jsonlist}/v1"),
    Case("JSON of the wrong shape", ("HCLOUD_ENDPOINT", "without a list of server_types"),
         endpoint="http://127.0.0.1:{fake:jsonempty}/v1"),
    Case("localcloud without /v1", ("HCLOUD_ENDPOINT http://127.0.0.1:{port}", "ending in /v1"),
         endpoint="http://127.0.0.1:{port}"),
    Case("the wrong API version", ("HCLOUD_ENDPOINT", "ending in /v1"), endpoint="http://127.0.0.1:{port}/v2"),
]

# Accepted: a plan (exit 0), no writes.
VALID: list[Case] = [
    Case("admin exactly a /16", (), _set("admin_cidrs", ["10.20.0.0/16"])),
    Case("admin a /48 of IPv6 and a /32", (), _set("admin_cidrs", [f"{ADMIN_IP}/32", "2a01:4f8:1::/48"])),
    Case("admin overlapping networks", (), _set("admin_cidrs", ["10.20.0.0/16", "10.20.1.0/24"])),
    Case("wide admin with the flag", (), _set("admin_cidrs", ["10.0.0.0/8"]), args=("dev", "--allow-wide-admin-cidrs")),
    Case("a pool of count 0", (), _set("pools.workers.count", 0)),
    Case("a taint without a value", (), _set("pools.agents.taints", ["dedicated:NoExecute"])),
    Case("an ECDSA key", (), _set("ssh_keys.0.public_key", ECDSA)),
    Case("a key with a long comment", (), _set("ssh_keys.0.public_key", KEY + " with spaces in it")),
    Case("YAML anchors and aliases", (), text=dev_text(
        "control-plane: {role: k3s_server, server_type: cx23,",
        "control-plane: {role: k3s_server, server_type: &small cx23,")
        .replace(b"redis, server_type: cx23", b"redis, server_type: *small")),
    Case("an env name of 20 characters", (), args=("abcdefghij-klmnopq-1",)),
    Case("endpoint with a trailing slash", (), endpoint="http://127.0.0.1:{port}/v1/"),
    Case("endpoint on localhost", (), endpoint="http://localhost:{port}/v1"),
    Case("empty overrides file", (), vars={"NORNOS_OVERRIDES": "{tmp}/o.yaml"}, files={"o.yaml": b""}),
    Case("a read-only token plans", (), vars={"HCLOUD_TOKEN": READONLY_TOKEN}),
]


# -- fake endpoints ----------------------------------------------------------------------------
FAKES: dict[str, tuple[int, str, bytes]] = {
    "text": (200, "text/plain", b"OK"),
    "html404": (404, "text/html", b"<html><body>Not Found</body></html>"),
    "html502": (502, "text/html", b"<html><body>Bad Gateway</body></html>"),
    "jsonlist": (200, "application/json", b"[]"),
    "jsonempty": (200, "application/json", b"{}"),
}


class _Fake(http.server.BaseHTTPRequestHandler):
    reply: tuple[int, str, bytes] = (200, "text/plain", b"")

    def do_GET(self) -> None:
        status, kind, body = self.reply
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Endpoints:
    port: int  # localcloud
    dead: int  # nothing listens
    hang: int  # accepts, never answers
    fakes: dict[str, int]

    def fill(self, text: str) -> str:
        for kind, port in self.fakes.items():
            text = text.replace(f"{{fake:{kind}}}", str(port))
        return text.replace("{port}", str(self.port)).replace("{dead}", str(self.dead)).replace(
            "{hang}", str(self.hang))


@pytest.fixture(scope="module")
def endpoints(localcloud: LocalCloud) -> Iterator[Endpoints]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # closed again: connections are refused
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)  # the kernel completes the handshake; nobody ever reads or answers
    servers = []
    for kind, reply in FAKES.items():
        handler = type(f"Fake{kind}", (_Fake,), {"reply": reply})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((kind, server))
    yield Endpoints(localcloud.port, dead, hang.getsockname()[1], {k: s.server_address[1] for k, s in servers})
    for _, server in servers:
        server.shutdown()
    hang.close()


# -- running one case ---------------------------------------------------------------------------
@dataclass
class Outcome:
    result: subprocess.CompletedProcess[str]
    seconds: float
    writes: list[dict[str, Any]]


def run_case(case: Case, lc: LocalCloud, eps: Endpoints, tmp: Path) -> Outcome:
    env_dir = tmp / "environments"
    env_dir.mkdir()
    name = case.args[0] if case.args and case.args[0] and "/" not in case.args[0] and len(case.args[0]) < 100 \
        and case.args[0].isprintable() else "dev"
    path = env_dir / f"{name}.yaml"
    if case.text == b"<dir>":
        path.mkdir()
    elif case.text == b"<none>":
        pass
    elif case.text is not None:
        path.write_bytes(case.text)
    else:
        data = base_env(name)
        if case.mutate is not None:
            case.mutate(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    for file, content in case.files.items():
        (tmp / file).write_bytes(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HCLOUD_", "NORNOS_", "SSH_PUBLIC_KEY"))}
    env.update({"HCLOUD_ENDPOINT": eps.fill(case.endpoint) if case.endpoint else lc.endpoint,
                "HCLOUD_TOKEN": TOKEN, "HCLOUD_CONFIG": str(tmp / "no-cli.toml"), "NORNOS_POLL_INTERVAL": "0.05",
                "COLUMNS": "250", "HOME": str(tmp)})
    for key, value in case.vars.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value.replace("{tmp}", str(tmp))
    args = [eps.fill(a) for a in case.args]
    cmd = [sys.executable, str(ROOT / "provision.py"), *args, "--env-dir", str(env_dir),
           "--inventory-dir", str(tmp / "inventories")]
    if "--env-dir" in args:  # the case's own directory
        cmd = [sys.executable, str(ROOT / "provision.py"), *args]
    if args and "--admin-ip" not in args:
        cmd += ["--admin-ip", ADMIN_IP]
    before = lc.side("GET", "requests?since=0")["last_seq"]
    started = time.monotonic()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=LIMIT + 30, cwd=tmp)
    seconds = time.monotonic() - started
    log = lc.side("GET", f"requests?since={before}")["requests"]
    return Outcome(result, seconds, [r for r in log if r["method"] in MUTATING])


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith(("error:", "provision.py: error:"))]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_before_any_write(case: Case, localcloud: LocalCloud, endpoints: Endpoints,
                                               tmp_path: Path) -> None:
    out = run_case(case, localcloud, endpoints, tmp_path)
    both = out.result.stdout + out.result.stderr
    assert out.result.returncode != 0, both
    if case.exit is not None:
        assert out.result.returncode == case.exit, both
    assert "Traceback" not in both, both
    lines = error_lines(out.result)
    assert len(lines) == 1, f"expected one error line:\n{out.result.stderr}"
    for needle in case.needles:
        assert endpoints.fill(needle) in lines[0], f"{needle!r} not in: {lines[0]}"
    assert out.seconds <= LIMIT, f"took {out.seconds:.1f} s"
    assert len(out.writes) == case.writes, out.writes
    for write in out.writes:  # only the permission probe, refused: it creates nothing
        assert (write["method"], write["path"], write["status"]) == ("POST", "/ssh_keys", 401), write
    assert TOKEN not in both and READONLY_TOKEN not in both


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_valid_edge_cases_are_accepted(case: Case, localcloud: LocalCloud, endpoints: Endpoints,
                                       tmp_path: Path) -> None:
    out = run_case(dataclasses.replace(case, args=(*case.args, "--dry-run")), localcloud, endpoints, tmp_path)
    assert out.result.returncode == 0, out.result.stdout + out.result.stderr
    assert "Plan for" in out.result.stdout and not error_lines(out.result)
    assert out.writes == []


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 80 and len({c.id for c in CASES}) == len(CASES)
    kinds = {"env file": [c for c in CASES if c.text is not None or c.mutate is not None],
             "flag": [c for c in CASES if c.args != ("dev",)],
             "variable": [c for c in CASES if c.vars],
             "endpoint": [c for c in CASES if c.endpoint]}
    assert all(len(v) >= 8 for v in kinds.values()), {k: len(v) for k, v in kinds.items()}
