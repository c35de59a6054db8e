"""SSH host keys pinned at create time: the user_data cloud-init reads, the label that records
the public half, known_hosts lines OpenSSH and paramiko accept, and localcloud's cloud-config
subset writing the key where sshd finds it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest
import yaml

from localcloud.hosts import cloudinit
from nornos_infra import host_keys

LABEL_VALUE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")  # Hetzner's label value rule


def test_label_holds_the_whole_public_key() -> None:
    key = host_keys.generate()
    assert len(key.label_value) == 52 and LABEL_VALUE.match(key.label_value)
    assert host_keys.from_label(key.label_value) == key.public_line
    assert host_keys.from_label(key.label_value.upper()) == key.public_line
    for bad in (None, "", "abc", key.label_value[:-1] + "!", key.label_value + "a"):
        assert host_keys.from_label(bad) is None


def test_the_private_half_is_never_in_a_repr() -> None:
    key = host_keys.generate()
    assert "PRIVATE" not in repr(key) and key.public_line in repr(key)


def test_cloud_config_is_what_cloud_init_reads() -> None:
    key = host_keys.generate()
    text = host_keys.cloud_config(key)
    assert text.startswith("#cloud-config\n")
    data = yaml.safe_load(text)
    assert data == {"ssh_keys": {"ed25519_private": key.private_openssh.strip() + "\n",
                                 "ed25519_public": key.public_line}}
    assert len(text.encode()) < 32 * 1024, "Hetzner's user_data limit"


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="no ssh-keygen here")
def test_openssh_derives_the_same_public_key(tmp_path: Path) -> None:
    key = host_keys.generate()
    private = tmp_path / "ssh_host_ed25519_key"
    private.write_text(key.private_openssh)
    private.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True)
    assert derived.stdout.split()[:2] == key.public_line.split()


def test_known_hosts_lines_load_in_paramiko(tmp_path: Path) -> None:
    key = host_keys.generate()
    path = tmp_path / "dev.known_hosts"
    path.write_text(host_keys.known_hosts([(["198.51.100.7", "nornos-dev-redis-1"], key.public_line)]))
    known = paramiko.HostKeys(str(path))
    entry = known.lookup("198.51.100.7")
    assert entry is not None and entry["ssh-ed25519"].get_base64() == key.public_line.split()[1]
    assert known.lookup("nornos-dev-redis-1") is not None


def test_localcloud_writes_the_host_key_before_the_first_boot(tmp_path: Path) -> None:
    root = tmp_path / "machine"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("the template's key\n")
    key = host_keys.generate()
    user_data = host_keys.cloud_config(key) + "runcmd:\n  - [touch, /tmp/x]\nssh_keys_extra: 1\n"
    cloudinit.seed(root, hostname="nornos-dev-redis-1", ssh_keys=["ssh-ed25519 AAAA admin"], user_data=user_data,
                   proxy_url="http://198.51.100.1:3142")
    private = root / "etc/ssh/ssh_host_ed25519_key"
    assert private.read_text() == key.private_openssh.strip() + "\n"
    assert private.stat().st_mode & 0o777 == 0o600
    assert (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text() == key.public_line + "\n"
    plan = (root / cloudinit.PLAN_FILE).read_text()
    assert "PRIVATE KEY" not in plan, "the private half is not kept in the first-boot plan"
    loaded = json.loads(plan)
    assert loaded["cloud_config"]["runcmd"] == [["touch", "/tmp/x"]]
    assert loaded["ignored"] == ["ssh_keys_extra"] and loaded["problems"] == []


def test_localcloud_reports_half_pairs_and_other_key_kinds() -> None:
    plan = cloudinit.plan("#cloud-config\nssh_keys:\n  ed25519_private: x\n  rsa_certificate: y\n", "i-1")
    assert plan["host_keys"] == {}
    assert plan["ignored"] == ["ssh_keys.rsa_certificate"]
    assert plan["problems"] == ["ssh_keys: ed25519_private and ed25519_public go together; ed25519 not written"]
    assert cloudinit.plan("#cloud-config\nssh_keys: [a]\n", "i-2")["problems"] == [
        "ssh_keys must be a mapping such as {ed25519_private: ..., ed25519_public: ...}"]


def test_the_ssh_key_fingerprint_is_what_ssh_keygen_and_hetzner_show(tmp_path: Path) -> None:
    """The MD5 fingerprint provision.py looks a key up by (GET /ssh_keys?fingerprint=...) is the one
    Hetzner shows and ``ssh-keygen -l -E md5`` prints."""
    from nornos_infra.cloud.resources.ssh_keys import _fingerprint

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    public = (tmp_path / "k.pub").read_text().strip()
    printed = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(tmp_path / "k.pub")], check=True,
                             capture_output=True, text=True).stdout.split()[1]
    assert _fingerprint(public) == printed.removeprefix("MD5:")
    assert len(_fingerprint(public).split(":")) == 16
