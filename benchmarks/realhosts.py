"""dev on localcloud's real machines, for the benchmarks that deploy hosts (deploy_bench.py,
host_audit.py): a localcloud --hosts nspawn of their own in a temporary directory, the
committed environments/dev.yaml with a fresh admin key and this machine as the admin address,
the env's secrets, provision.py and pyinfra as a user would run them.

Root on Linux, nothing else using real hosts (hold /tmp/nornos-realhosts.lock).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from localcloud import control
from nornos_infra import inventory, secrets
from nornos_infra.admin_key import ensure_keypair

ROOT = Path(__file__).resolve().parents[1]
ADMIN_ADDRESS = "198.51.100.1"  # localcloud: this machine on the machines' public side
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SSH_OPTS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20"]


def changed_operations(log: str) -> list[str]:
    """Rows of pyinfra's closing results table whose Success column is not "-"."""
    lines = [ANSI.sub("", line).strip() for line in log.splitlines()]
    header = next(i for i, ln in enumerate(lines) if ln.split() == ["Operation", "Hosts", "Success", "Error",
                                                                       "No", "Change"])
    end = next(i for i in range(header, len(lines)) if lines[i].startswith("Grand total"))
    return [ln for ln in lines[header + 1:end] if ln.split()[-3] != "-"]


class RealDev:
    """dev provisioned and deployed on real machines; ``close()`` removes all of it."""

    def __init__(self, tmp: Path, faults: str = "") -> None:
        self.tmp = tmp
        self.key = tmp / "ssh" / "id_ed25519"
        public_key = ensure_keypair(self.key)
        data: dict[str, Any] = yaml.safe_load((ROOT / "environments" / "dev.yaml").read_text())
        data["ssh_keys"] = [{"name": "admin", "public_key_file": str(public_key)}]
        data["admin_cidrs"] = [f"{ADMIN_ADDRESS}/32"]
        (tmp / "env").mkdir()
        (tmp / "env" / "dev.yaml").write_text(yaml.safe_dump(data))
        extra = ["--hosts", "nspawn", "--time-scale", "0.2"] + (["--faults", faults] if faults else [])
        self.lc = control.up(tmp / "lc", port=0, extra=extra)
        self.vars = {**os.environ, **self.lc.env, "NORNOS_POLL_INTERVAL": "0.2",
                     "SOPS_AGE_KEY_FILE": str(tmp / "age.txt"), "NORNOS_SECRETS_DIR": str(tmp / "secrets")}
        os.environ.update({k: self.vars[k] for k in ("SOPS_AGE_KEY_FILE", "NORNOS_SECRETS_DIR")})
        secrets.init("dev")

    def close(self) -> None:
        control.down(self.tmp / "lc")

    def lift_faults(self) -> None:
        request = urllib.request.Request(self.lc.endpoint.removesuffix("/v1") + "/_localcloud/faults",
                                         data=b"{}", method="PUT", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()

    def provision(self, *extra: str) -> None:
        cmd = [sys.executable, str(ROOT / "provision.py"), "dev", "--yes", "--env-dir", str(self.tmp / "env"),
               "--inventory-dir", str(self.tmp / "inv"), *extra]
        proc = subprocess.run(cmd, env=self.vars, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"provision.py {' '.join(extra)} failed: {proc.stderr.strip()[-800:]}")

    def pyinfra(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """One ``pyinfra -y inventories/dev.py deploys/all.py`` run; raises when it fails."""
        cmd = [str(Path(sys.executable).parent / "pyinfra"), "-y", str(self.tmp / "inv" / "dev.py"),
               str(ROOT / "deploys" / "all.py"), "--user", "root", "--key", str(self.key),
               "--data", "ssh_strict_host_key_checking=off", "--data", "ssh_known_hosts_file=/dev/null", *extra]
        proc = subprocess.run(cmd, env=self.vars, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            log = ANSI.sub("", proc.stdout + proc.stderr).strip()
            raise RuntimeError(f"pyinfra {' '.join(extra)} failed: {log[-3000:]}")
        return proc

    def address(self, name: str) -> str:
        return inventory.load(self.tmp / "inv" / "dev.py").host(name).ssh_hostname

    def on(self, name: str, command: str, timeout: float = 900) -> str:
        """Run ``command`` as root on host ``name``; its stdout."""
        proc = subprocess.run(["ssh", "-i", str(self.key), *SSH_OPTS, f"root@{self.address(name)}", command],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{name}: {command!r} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
        return proc.stdout
