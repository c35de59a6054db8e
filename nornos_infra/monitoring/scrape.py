"""Prometheus scrape jobs for the exporters on the hosts (nornos_infra/roles/exporters.py).

One static target per host and exporter, addressed by its private IP (Prometheus runs on the k3s
nodes, which the hosts' firewalls let in), labelled ``host`` (the server's name), ``role`` and
``env``: the alert rules and Alertmanager's grouping and inhibition key on ``host``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nornos_infra.vocabulary import NODE_EXPORTER_PORT, POSTGRES_EXPORTER_PORT, REDIS_EXPORTER_PORT

SCRAPE_INTERVAL, SCRAPE_TIMEOUT = "30s", "10s"


@dataclass(frozen=True)
class Monitored:
    """A host as the scrape jobs need it."""

    name: str
    role: str  # k3s_server, k3s_agent, postgres, redis
    private_ip: str


def scrape_configs(env: str, hosts: list[Monitored], interval: str = SCRAPE_INTERVAL,
                   timeout: str = SCRAPE_TIMEOUT) -> list[dict[str, Any]]:
    """The ``scrape_configs`` entries (Prometheus's format), in a stable order; ``timeout`` must
    not exceed ``interval`` (Prometheus refuses the file)."""
    ordered = sorted(hosts, key=lambda h: h.name)

    def job(name: str, port: int, members: list[Monitored]) -> dict[str, Any]:
        return {
            "job_name": name, "scrape_interval": interval, "scrape_timeout": timeout,
            "static_configs": [{"targets": [f"{h.private_ip}:{port}"],
                                "labels": {"host": h.name, "role": h.role, "env": env}} for h in members],
        }

    jobs = [job("node", NODE_EXPORTER_PORT, ordered)]
    postgres = [h for h in ordered if h.role == "postgres"]
    redis = [h for h in ordered if h.role == "redis"]
    if postgres:
        jobs.append(job("postgres", POSTGRES_EXPORTER_PORT, postgres))
    if redis:
        jobs.append(job("redis", REDIS_EXPORTER_PORT, redis))
    return jobs
