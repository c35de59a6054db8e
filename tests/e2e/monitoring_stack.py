"""A real Prometheus and Alertmanager (Debian's packages) on one of localcloud's k3s node machines,
configured as the cluster's are: the scrape jobs generated from the inventory, the rule file
extracted from the PrometheusRule manifest, Alertmanager's configuration generated with a Slack
webhook; only its timings are shorter, and the webhook is a listener on this machine.

No Kubernetes is involved (none can run here): this is what kube-prometheus-stack would run, fed
the same configuration."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from nornos_infra import inventory
from nornos_infra.monitoring import alerting, rules, scrape
from nornos_infra.vocabulary import GROUP_OF_ROLE

# (the lock waited for: a fresh machine's daily apt jobs may hold it)
INSTALL = ("for i in 1 2 3; do out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "
           "--no-install-recommends prometheus prometheus-alertmanager 2>&1) && echo installed && exit 0; sleep 5; "
           "done; echo \"$out\" | tail -n 15")


class SlackListener:
    """Slack's incoming-webhook side: keeps what Alertmanager posts (one JSON message per post)."""

    def __init__(self, address: str) -> None:
        self.messages: list[dict[str, Any]] = []
        received = self.messages

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.HTTPServer((address, 0), Hook)
        self.url = f"http://{address}:{self.server.server_port}/services/T000/B000/test"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def titles(self) -> list[str]:
        return [a.get("title", "") for m in self.messages for a in m.get("attachments", [])]

    def wait_for(self, text: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [t for t in self.titles() if text in t]
            if found:
                return found[0]
            time.sleep(1)
        raise AssertionError(f"no Slack message with {text!r} within {timeout:.0f} s; got {self.titles()}")

    def close(self) -> None:
        self.server.shutdown()


def monitored(inventory_file: Path) -> list[scrape.Monitored]:
    role_of_group = {group: role for role, group in GROUP_OF_ROLE.items()}
    return [scrape.Monitored(h.name, role_of_group[h.group], h.private_ip)
            for h in inventory.load(inventory_file).hosts()]


def configure(on: Callable[[str], str], inventory_file: Path, webhook: str, work: Path) -> None:
    """Install and start Prometheus and Alertmanager where ``on`` runs commands (as root)."""
    installed = on(INSTALL)
    assert installed.endswith("installed"), installed
    prometheus = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "rule_files": ["/etc/prometheus/nornos-rules.yaml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]},
        "scrape_configs": scrape.scrape_configs("dev", monitored(inventory_file), interval="5s", timeout="4s"),
    }
    manager = alerting.alertmanager_config("dev", webhook, alerting.Timing(group_wait="5s", group_interval="10s",
                                                                          repeat_interval="1h"))
    files = {
        "/etc/prometheus/prometheus.yml": yaml.safe_dump(prometheus, sort_keys=False),
        "/etc/prometheus/nornos-rules.yaml": rules.write_rule_file(work / "nornos-rules.yaml").read_text(),
        "/etc/prometheus/alertmanager.yml": yaml.safe_dump(manager, sort_keys=False),
        # one Alertmanager: no cluster port
        "/etc/default/prometheus-alertmanager": 'ARGS="--cluster.listen-address="\n',
    }
    for path, text in files.items():
        on(f"python3 -c \"open('{path}', 'wb').write(bytes.fromhex('{text.encode().hex()}'))\"")
    assert on("promtool check config /etc/prometheus/prometheus.yml >/dev/null && amtool check-config "
              "/etc/prometheus/alertmanager.yml >/dev/null && systemctl restart prometheus prometheus-alertmanager "
              "&& echo restarted") == "restarted"


def targets_up(on: Callable[[str], str], wanted: int, timeout: float = 120) -> dict[str, str]:
    """Wait until Prometheus has scraped ``wanted`` targets successfully; job/host -> health."""
    deadline = time.monotonic() + timeout
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        raw = on("curl -fsS -m 5 http://127.0.0.1:9090/api/v1/targets || true")
        if raw:
            active = json.loads(raw)["data"]["activeTargets"]
            health = {f"{t['labels']['job']}/{t['labels']['host']}": t["health"] for t in active}
            if sum(1 for h in health.values() if h == "up") >= wanted:
                return health
        time.sleep(2)
    raise AssertionError(f"Prometheus scraped fewer than {wanted} targets: {health}")
