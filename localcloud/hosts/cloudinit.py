"""What Hetzner's cloud-init does on a server's first boot, for localcloud machines.

The host side (:func:`seed`) writes into a machine's disk before it boots: hostname, a new
machine-id, root's authorized_keys from the API's SSH keys, the SSH host keys that
user_data's ``ssh_keys`` gives (as cloud-init writes them before sshd starts; sshd makes the
missing types), and the rest of the user_data turned into a JSON plan. In the machine, the oneshot unit
``localcloud-init.service`` (installed in the template) runs :data:`FIRSTBOOT_SCRIPT` once
per instance; it logs to /var/log/cloud-init-output.log like cloud-init, and
``cloud-init status [--wait] [--long] [--format json]`` answers as cloud-init does.

user_data understood: ``#cloud-config`` with ssh_authorized_keys, ssh_keys (rsa/ecdsa/ed25519
_private and _public pairs), write_files (content,
encoding b64/gzip/gz+b64, permissions, owner, append, defer), package_update,
package_upgrade, packages, runcmd, hostname; or a script starting with ``#!``, run last.
Every other cloud-config key is ignored and named in the log (e.g. users, bootcmd, mounts,
apt, timezone); other formats (MIME multipart, #include, gzip) are ignored likewise.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_KEYS = ("ssh_authorized_keys", "write_files", "package_update", "package_upgrade", "packages",
                  "runcmd", "hostname")
STATE_DIR = "var/lib/localcloud"  # in the machine
PLAN_FILE = f"{STATE_DIR}/instance.json"
HOST_KEY_TYPES = ("rsa", "ecdsa", "ed25519")  # cloud-init's ssh_keys: <type>_private, <type>_public
DONE_FILE = f"{STATE_DIR}/firstboot.done"

UNIT_TEXT = """\
[Unit]
Description=localcloud first boot (cloud-init subset: SSH keys, write_files, packages, runcmd)
After=network.target ssh.service systemd-user-sessions.service
ConditionPathExists=!/var/lib/localcloud/firstboot.done

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/python3 /usr/local/lib/localcloud/firstboot.py
TimeoutStartSec=30min

[Install]
WantedBy=multi-user.target
"""

FIRSTBOOT_SCRIPT = r'''#!/usr/bin/python3
"""localcloud first boot: applies /var/lib/localcloud/instance.json once (see localcloud/hosts/cloudinit.py)."""
import base64, gzip, json, os, pwd, grp, shlex, subprocess, sys, time

PLAN = "/var/lib/localcloud/instance.json"
DONE = "/var/lib/localcloud/firstboot.done"
LOG = "/var/log/cloud-init-output.log"
errors = []
out = open(LOG, "a", buffering=1)


def say(text):
    out.write(text + "\n")


def sh(cmd, what):
    say(f"+ {what}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", HOME="/root",
               PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    if rc != 0:
        errors.append(f"{what}: exit {rc}")
        say(f"! {what} failed with exit status {rc}")
    return rc


def write_file(item):
    path = item.get("path")
    if not path:
        errors.append("write_files: an entry without path")
        return
    data = item.get("content", "")
    data = data.encode() if isinstance(data, str) else str(data).encode()
    enc = str(item.get("encoding", "text")).lower()
    if enc in ("b64", "base64", "gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
        data = base64.b64decode(data)
    if enc in ("gz", "gzip", "gz+b64", "gzip+base64", "gz+base64", "gzip+b64"):
        data = gzip.decompress(data)
    os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
    with open(path, "ab" if item.get("append") else "wb") as f:
        f.write(data)
    perms = item.get("permissions", "0644")
    os.chmod(path, int(str(perms), 8) if isinstance(perms, str) else int(perms))
    owner = str(item.get("owner", "root:root"))
    user, _, group = owner.partition(":")
    try:
        os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group or user).gr_gid)
    except KeyError:
        errors.append(f"write_files {path}: unknown owner {owner}")
    say(f"wrote {path}")


def main():
    started = time.time()
    plan = json.load(open(PLAN)) if os.path.exists(PLAN) else {}
    say(f"localcloud-init: first boot of instance {plan.get('instance_id')}")
    for problem in plan.get("problems", []):
        say(f"! user_data: {problem}")
        errors.append(problem)
    for key in plan.get("ignored", []):
        say(f"localcloud-init: user_data key {key!r} is not supported by localcloud, ignored")
    cc = plan.get("cloud_config", {})
    for item in cc.get("write_files", []):
        if not item.get("defer"):
            write_file(item)
    keys = cc.get("ssh_authorized_keys", [])
    if keys:
        os.makedirs("/root/.ssh", mode=0o700, exist_ok=True)
        with open("/root/.ssh/authorized_keys", "a") as f:
            for key in keys:
                f.write(key.strip() + "\n")
        os.chmod("/root/.ssh/authorized_keys", 0o600)
        say(f"added {len(keys)} ssh_authorized_keys for root")
    packages = cc.get("packages", [])
    apt = ["apt-get", "--option=Dpkg::Options::=--force-confold", "--assume-yes", "--quiet"]
    if cc.get("package_update") or cc.get("package_upgrade") or packages:
        sh(apt + ["update"], "apt-get update")
    if cc.get("package_upgrade"):
        sh(apt + ["dist-upgrade"], "apt-get dist-upgrade")
    if packages:
        names = ["=".join(map(str, p)) if isinstance(p, list) else str(p) for p in packages]
        sh(apt + ["install"] + names, "apt-get install " + " ".join(names))
    for item in cc.get("write_files", []):
        if item.get("defer"):
            write_file(item)
    runcmd = cc.get("runcmd", [])
    if runcmd:
        lines = ["#!/bin/sh"] + [shlex.join(map(str, c)) if isinstance(c, list) else str(c) for c in runcmd]
        os.makedirs("/var/lib/localcloud/scripts", exist_ok=True)
        with open("/var/lib/localcloud/scripts/runcmd", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod("/var/lib/localcloud/scripts/runcmd", 0o700)
        sh(["/var/lib/localcloud/scripts/runcmd"], "runcmd")
    if plan.get("script"):
        with open("/var/lib/localcloud/scripts/user-data", "w") as f:
            f.write(plan["script"])
        os.chmod("/var/lib/localcloud/scripts/user-data", 0o700)
        sh(["/var/lib/localcloud/scripts/user-data"], "user_data script")
    status = "error" if errors else "done"
    with open(DONE, "w") as f:
        json.dump({"status": status, "errors": errors, "seconds": round(time.time() - started, 3)}, f)
    say(f"localcloud-init finished: {status} in {time.time() - started:.1f} s")
    return 0


os.makedirs("/var/lib/localcloud", exist_ok=True)
try:
    sys.exit(main())
except Exception as exc:  # never leave the instance without a result
    errors.append(f"localcloud-init crashed: {exc!r}")
    say(f"! {errors[-1]}")
    with open(DONE, "w") as f:
        json.dump({"status": "error", "errors": errors}, f)
    sys.exit(1)
'''

CLOUD_INIT_SHIM = r'''#!/usr/bin/python3
"""cloud-init status [--wait] [--long] [--format json], answered from localcloud's first boot."""
import json, os, sys, time

DONE = "/var/lib/localcloud/firstboot.done"
args = sys.argv[1:]
if not args or args[0] != "status":
    print("localcloud: only `cloud-init status [--wait] [--long] [--format json]` is provided", file=sys.stderr)
    sys.exit(2)
while "--wait" in args or "-w" in args:
    if os.path.exists(DONE):
        break
    time.sleep(0.5)
result = json.load(open(DONE)) if os.path.exists(DONE) else {"status": "running", "errors": []}
if "json" in args:
    print(json.dumps({"status": result["status"], "errors": result.get("errors", [])}))
else:
    print(f"status: {result['status']}")
    if "--long" in args or "-l" in args:
        print("detail: localcloud first boot")
        for e in result.get("errors", []):
            print(f"error: {e}")
sys.exit(1 if result["status"] == "error" else 0)
'''

TEMPLATE_FILES: dict[str, tuple[str, int]] = {
    "usr/local/lib/localcloud/firstboot.py": (FIRSTBOOT_SCRIPT, 0o755),
    "usr/local/bin/cloud-init": (CLOUD_INIT_SHIM, 0o755),
    "etc/systemd/system/localcloud-init.service": (UNIT_TEXT, 0o644),
}
TEMPLATE_LINKS: dict[str, str] = {
    "etc/systemd/system/multi-user.target.wants/localcloud-init.service": "/etc/systemd/system/localcloud-init.service",
}


def plan(user_data: str | None, instance_id: str) -> dict[str, Any]:
    """The first-boot plan for user_data: what runs, what is ignored, what could not be read."""
    out: dict[str, Any] = {"instance_id": instance_id, "cloud_config": {}, "ignored": [], "problems": []}
    text = (user_data or "").strip()
    if not text:
        return out
    if text.startswith("#!"):
        out["script"] = user_data
        return out
    if not text.startswith("#cloud-config"):
        first = text.splitlines()[0][:40]
        out["ignored"].append(f"user_data format {first!r} (only #cloud-config and #! scripts)")
        return out
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        out["problems"].append(f"cloud-config is not valid YAML: {str(exc).splitlines()[0]}")
        return out
    if data is None:
        return out
    if not isinstance(data, dict):
        out["problems"].append("cloud-config must be a mapping")
        return out
    for key, value in data.items():
        if key in SUPPORTED_KEYS:
            out["cloud_config"][key] = value
        elif key == "ssh_keys":  # written by seed() before the first boot, never kept in the plan file
            out["host_keys"] = _host_keys(value, out)
        else:
            out["ignored"].append(str(key))
    # JSON-able (YAML dates and the like become strings)
    out["cloud_config"] = json.loads(json.dumps(out["cloud_config"], default=str))
    return out


def _host_keys(value: Any, out: dict[str, Any]) -> dict[str, dict[str, str]]:
    """cloud-config ``ssh_keys``: complete private/public pairs by type; the rest is reported."""
    if not isinstance(value, dict):
        out["problems"].append("ssh_keys must be a mapping such as {ed25519_private: ..., ed25519_public: ...}")
        return {}
    pairs: dict[str, dict[str, str]] = {}
    for name, text in value.items():
        kind, _, part = str(name).rpartition("_")
        if kind not in HOST_KEY_TYPES or part not in ("private", "public") or not isinstance(text, str):
            out["ignored"].append(f"ssh_keys.{name}")  # e.g. ed25519_certificate
            continue
        pairs.setdefault(kind, {})[part] = text
    for kind in sorted(pairs):
        if set(pairs[kind]) != {"private", "public"}:
            out["problems"].append(f"ssh_keys: {kind}_private and {kind}_public go together; {kind} not written")
            del pairs[kind]
    return pairs


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(text)
    path.chmod(mode)


def apt_proxy_conf(proxy_url: str) -> str:
    """apt's settings for the machines: every request through the proxy, and no request that
    can hang for ever. Seen here: with several fresh machines fetching the same index at once,
    apt-cacher-ng sometimes sends one client the headers of a file it is downloading and
    never the body; apt's http method times out and then, retrying on the same connection,
    can wait for ever (apt 2.6). So: one request per connection, a 15 s stall limit and no
    retries inside apt: the stalled file fails fast and the caller runs apt-get again (the
    deploy roles' apt_update does, see nornos_infra/roles/ops.py)."""
    return "\n".join([
        f'Acquire::http::Proxy "{proxy_url}/";',
        'Acquire::http::Pipeline-Depth "0";',
        'Acquire::http::Timeout "15";',
        'Acquire::Retries "0";',
        "",
    ])


def seed(root: Path, *, hostname: str, ssh_keys: list[str], user_data: str | None, proxy_url: str,
         instance_id: str | None = None) -> str:
    """Prepare a machine's disk (mounted at ``root``) for its first boot as a new instance."""
    instance = instance_id or uuid.uuid4().hex
    hostname = hostname.split(".")[0] if "." in hostname else hostname
    pl = plan(user_data, instance)
    if isinstance(pl["cloud_config"].get("hostname"), str):
        hostname = pl["cloud_config"]["hostname"]
    _write(root, "etc/hostname", hostname + "\n")
    _write(root, "etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {hostname}\n"
                              "::1 localhost ip6-localhost ip6-loopback\n")
    _write(root, "etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for kind, pair in sorted(pl.pop("host_keys", {}).items()):  # the private halves stay out of PLAN_FILE
        _write(root, f"etc/ssh/ssh_host_{kind}_key", pair["private"].strip() + "\n", 0o600)
        _write(root, f"etc/ssh/ssh_host_{kind}_key.pub", pair["public"].strip() + "\n", 0o644)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    ssh_dir.chmod(0o700)
    _write(root, "root/.ssh/authorized_keys", "".join(k.strip() + "\n" for k in ssh_keys), 0o600)
    _write(root, "etc/apt/apt.conf.d/01localcloud-proxy", apt_proxy_conf(proxy_url))
    _write(root, PLAN_FILE, json.dumps(pl, indent=1) + "\n", 0o600)
    (root / DONE_FILE).unlink(missing_ok=True)
    for leftover in ("var/log/cloud-init-output.log", "var/lib/localcloud/scripts"):
        path = root / leftover
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return instance
