"""The whole path on real machines: provision dev on localcloud --hosts nspawn, run
deploys/all.py with pyinfra, then check the hosts' real state from where it matters:
a k3s node reaches PostgreSQL (TLS, SCRAM, its own database) and Redis (ACL user);
the Redis host, the PostgreSQL host and the internet side are refused at the network;
SSH refuses passwords; a second deploy changes nothing; --dry --diff shows no secret."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from nornos_infra import secrets
from nornos_infra.admin_key import ensure_keypair
from tests.conftest import TOKEN, LocalCloud
from tests.e2e.conftest import assert_nothing_left, ssh
from tests.e2e.test_api_hosts import start_with_hosts

pytestmark = [
    pytest.mark.e2e,
    # opt-in until the hang is fixed: with six fresh machines at once, one `apt-get update`
    # through apt-cacher-ng sometimes never returns (seen twice; issue 5). The same checks
    # passed by hand on 2026-11-28 (see the closing note of stop 7).
    pytest.mark.skipif(os.environ.get("NORNOS_E2E_DEPLOY") != "1",
                       reason="set NORNOS_E2E_DEPLOY=1: full deploy on real machines (apt proxy hang, issue 5)"),
]
ROOT = Path(__file__).resolve().parents[2]


class Env:
    def __init__(self, lc: LocalCloud, work: Path) -> None:
        self.lc, self.work = lc, work
        self.key = work / "ssh" / "id_ed25519"
        self.vars = {**os.environ, "HCLOUD_ENDPOINT": lc.endpoint, "HCLOUD_TOKEN": TOKEN,
                     "NORNOS_POLL_INTERVAL": "0.2", "SOPS_AGE_KEY_FILE": str(work / "age.txt"),
                     "NORNOS_SECRETS_DIR": str(work / "secrets")}

    def provision(self) -> None:
        cmd = [sys.executable, str(ROOT / "provision.py"), "dev", "--yes", "--env-dir", str(self.work / "env"),
               "--inventory-dir", str(self.work / "inv")]
        proc = subprocess.run(cmd, env=self.vars, capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]

    def pyinfra(self, *flags: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(Path(sys.executable).parent / "pyinfra"), *flags, str(self.work / "inv" / "dev.py"),
               str(ROOT / "deploys" / "all.py"), "--user", "root", "--key", str(self.key),
               "--data", "ssh_strict_host_key_checking=off", "--data", "ssh_known_hosts_file=/dev/null"]
        return subprocess.run(cmd, env=self.vars, capture_output=True, text=True, timeout=900, cwd=ROOT)

    def host(self, name: str) -> dict[str, Any]:
        inventory = runpy.run_path(str(self.work / "inv" / "dev.py"))
        for group in ("k3s_servers", "k3s_agents", "postgres", "redis"):
            for host_name, data in inventory[group][0]:
                if host_name == name:
                    return dict(data)
        raise KeyError(name)

    def on(self, name: str, command: str) -> str:
        return ssh(self.key, self.host(name)["ssh_hostname"], command).stdout.strip()


@pytest.fixture(scope="module")
def deployed() -> Iterator[Env]:
    with tempfile.TemporaryDirectory(prefix="deploy-hosts-") as tmp:
        work = Path(tmp)
        lc = start_with_hosts(work / "lc")
        try:
            env = Env(lc, work)
            public_key = ensure_keypair(env.key)
            data: dict[str, Any] = yaml.safe_load((ROOT / "environments" / "dev.yaml").read_text())
            data["ssh_keys"] = [{"name": "admin", "public_key_file": str(public_key)}]
            (work / "env").mkdir()
            (work / "env" / "dev.yaml").write_text(yaml.safe_dump(data))
            os.environ.update({k: env.vars[k] for k in ("SOPS_AGE_KEY_FILE", "NORNOS_SECRETS_DIR")})
            secrets.init("dev")
            env.provision()
            first = env.pyinfra("-y")
            if first.returncode != 0:  # a package mirror hiccup through the proxy: the deploy is idempotent
                first = env.pyinfra("-y")
            assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
            assert "k3s skipped: no binary" in first.stdout + first.stderr
            yield env
        finally:
            for key in ("SOPS_AGE_KEY_FILE", "NORNOS_SECRETS_DIR"):
                os.environ.pop(key, None)
            lc.stop()
            assert_nothing_left()


def test_the_cluster_reaches_its_data_services(deployed: Env) -> None:
    values = secrets.load("dev")
    pg = deployed.host("nornos-dev-postgres-1")["private_ip"]
    redis = deployed.host("nornos-dev-redis-1")["private_ip"]
    worker = "nornos-dev-workers-1"
    deployed.on(worker, "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client redis-tools "
                        ">/dev/null 2>&1")
    row = deployed.on(worker, f"PGPASSWORD='{values['db_password_patient_app']}' psql 'host={pg} "
                              "dbname=patient_app user=patient_app sslmode=require' -tAc "
                              "'select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()'")
    assert row == "patient_app|t"
    pong = deployed.on(worker, f"redis-cli -h {redis} --user nornos_app --pass '{values['redis_password']}' "
                               "--no-auth-warning ping")
    assert pong == "PONG"
    assert deployed.on("nornos-dev-postgres-1", "findmnt -n -o FSTYPE /mnt/postgres-data") == "ext4"


def _port(env: Env, source: str, ip: str, port: int) -> str:
    return env.on(source, f"timeout 5 bash -c '</dev/tcp/{ip}/{port}' 2>/dev/null && echo open || echo refused")


def test_the_data_services_refuse_everyone_else(deployed: Env) -> None:
    pg = deployed.host("nornos-dev-postgres-1")
    redis = deployed.host("nornos-dev-redis-1")
    assert _port(deployed, "nornos-dev-redis-1", pg["private_ip"], 5432) == "refused"
    assert _port(deployed, "nornos-dev-postgres-1", redis["private_ip"], 6379) == "refused"
    for ip, port in ((pg["public_ipv4"], 5432), (redis["public_ipv4"], 6379)):
        probe = subprocess.run(["timeout", "5", "bash", "-c", f"</dev/tcp/{ip}/{port}"], capture_output=True)
        assert probe.returncode != 0, f"{ip}:{port} is open to the internet side"
    refused = subprocess.run(["ssh", "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
                              "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
                              "UserKnownHostsFile=/dev/null", f"root@{pg['public_ipv4']}", "true"],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "publickey" in refused.stderr


def test_a_second_deploy_changes_nothing_and_diffs_hide_secrets(deployed: Env) -> None:
    again = deployed.pyinfra("-y")
    assert again.returncode == 0
    # pyinfra's summary: Operation | Hosts | Success | Error | No Change ("-" for none)
    changed = [line for line in again.stdout.splitlines()
               if "|" in line and len(line.split()) > 4 and line.split()[-3].isdigit()
               and int(line.split()[-3]) > 0]
    assert not changed, "operations changed on the second run:\n" + "\n".join(changed)
    dry = deployed.pyinfra("--dry", "--diff")
    assert dry.returncode == 0
    values = secrets.load("dev")
    output = dry.stdout + dry.stderr
    assert not [k for k in values if len(values[k]) > 8 and values[k] in output]
