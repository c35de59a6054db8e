"""Finding 11 of issue 10: ``invoke kubeconfig`` (kubeconfig.fetch) verifies the first control
plane's host key against the inventory's known_hosts file and refuses a host whose key is not
the pinned one, or not pinned at all, before anything is read or written. A local paramiko SSH
server plays the control plane."""

from __future__ import annotations

from pathlib import Path

import pytest

from nornos_infra import host_keys, kubeconfig
from nornos_infra.admin_key import ensure_keypair
from nornos_infra.errors import UserError
from tests.unit.test_ssh_access import sshd  # noqa: F401  (the fixture)


def _inventory(tmp_path: Path, port: int, known: str, strict: str = "yes") -> Path:
    hosts_file = tmp_path / "dev.known_hosts"
    hosts_file.write_text(known)
    login = ensure_keypair(tmp_path / "id_ed25519").with_suffix("")
    data = {"ssh_user": "root", "ssh_key": str(login), "ssh_known_hosts_file": str(hosts_file),
            "ssh_strict_host_key_checking": strict}
    host = {"ssh_hostname": "127.0.0.1", "ssh_port": port, "public_ipv4": "127.0.0.1"}
    path = tmp_path / "dev.py"
    path.write_text(f"k3s_servers = ([('nornos-dev-control-plane-1', {host!r})], {data!r})\n")
    return path


@pytest.mark.parametrize("case", ["another key pinned", "nothing pinned"])
def test_fetch_refuses_a_host_key_that_is_not_pinned(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     sshd: tuple[int, host_keys.HostKey]) -> None:  # noqa: F811
    port, _ = sshd
    monkeypatch.setenv("NORNOS_KUBECONFIG_DIR", str(tmp_path / "kube"))
    known = host_keys.known_hosts([([f"[127.0.0.1]:{port}"], host_keys.generate().public_line)]) \
        if case == "another key pinned" else ""
    inventory = _inventory(tmp_path, port, known)
    with pytest.raises(UserError) as exc:
        kubeconfig.fetch("dev", inventory)
    message = str(exc.value)
    assert "nornos-dev-control-plane-1" in message and "\n" not in message
    assert ("not the one pinned" in message) if case == "another key pinned" else ("has no pinned host key" in
                                                                                   message)
    assert not (tmp_path / "kube").exists() or not any((tmp_path / "kube").iterdir())
    assert (tmp_path / "dev.known_hosts").read_text() == known, "an unknown key is never added"


def test_fetch_gets_past_the_host_key_check_when_the_key_is_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   sshd: tuple[int, host_keys.HostKey]) -> None:  # noqa: F811
    """The same server with its key pinned: the host-key check passes (this test server has no
    SFTP, so the fetch fails later, on the file: the control that the refusals above are the
    host-key check's)."""
    port, key = sshd
    monkeypatch.setenv("NORNOS_KUBECONFIG_DIR", str(tmp_path / "kube"))
    inventory = _inventory(tmp_path, port, host_keys.known_hosts([([f"[127.0.0.1]:{port}"], key.public_line)]))
    with pytest.raises(UserError) as exc:
        kubeconfig.fetch("dev", inventory)
    assert "cannot fetch /etc/rancher/k3s/k3s.yaml" in str(exc.value)
    assert "pinned" not in str(exc.value)
