"""The alert rules (manifests/addons/monitoring-rules.yaml) and Alertmanager's configuration, checked
by Prometheus's own tools: ``promtool check rules``, ``promtool test rules`` (tests/monitoring/
alerts_test.yaml: every alert's firing and not-firing case) and ``amtool check-config``. Both tools
come from Debian's prometheus and prometheus-alertmanager packages (scripts/hosts-deps.sh)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from nornos_infra.monitoring import alerting, rules
from tests.e2e.prerequisites import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
UNIT_TESTS = ROOT / "tests" / "monitoring" / "alerts_test.yaml"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        skip_or_fail(f"{name} (Debian's prometheus and prometheus-alertmanager packages; scripts/hosts-deps.sh)")
    return str(found)


def run_unit_tests(tmp_path: Path, rules_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """promtool test rules with the manifests' rules (or ``rules_text``) beside the test file."""
    rule_file = tmp_path / "nornos-rules.yaml"
    rules.write_rule_file(rule_file)
    if rules_text is not None:
        rule_file.write_text(rules_text)
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    return subprocess.run([tool("promtool"), "test", "rules", UNIT_TESTS.name], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def alert_names() -> list[str]:
    return [r["alert"] for group in rules.rule_groups() for r in group["rules"] if "alert" in r]


def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    rule_file = rules.write_rule_file(tmp_path / "nornos-rules.yaml")
    proc = subprocess.run([tool("promtool"), "check", "rules", str(rule_file)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in proc.stdout


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say(tmp_path: Path) -> None:
    proc = run_unit_tests(tmp_path)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test") or []:
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    assert {name: cases.get(name, set()) for name in alert_names()} == {name: {True, False} for name in alert_names()}
    # the list, at least
    assert {"HostDown", "DiskAlmostFull", "DiskFullIn24h", "MemoryPressure", "PostgresDown",
            "PostgresConnectionsNearLimit", "WalArchivingFailing", "BackupFailed", "BackupTooOld", "RedisDown",
            "RedisEvicting", "RedisMemoryHigh", "CertificateExpiresSoon", "KubeNodeNotReady",
            "PodCrashLooping"} <= set(alert_names())


@pytest.mark.parametrize(("what", "before", "after"), [
    ("HostDown on a host that answers", 'expr: up{job="node"} == 0', 'expr: up{job="node"} == 1'),
    ("PostgresDown waits longer", "          for: 2m\n          labels:\n            severity: critical\n"
     "          annotations:\n            summary: \"PostgreSQL on", "          for: 9m\n          labels:\n"
     "            severity: critical\n          annotations:\n            summary: \"PostgreSQL on"),
    ("backups allowed to be 30 h old", "> 26 * 3600", "> 30 * 3600"),
    ("Redis memory at 99 %", 'redis_memory_max_bytes{job="redis"} > 0.9', 'redis_memory_max_bytes{job="redis"} > 0.99'),
])
def test_a_broken_rule_fails_the_unit_tests(tmp_path: Path, what: str, before: str, after: str) -> None:
    source = rules.RULES_FILE
    text = yaml.safe_dump({"groups": rules.rule_groups()}, sort_keys=False)
    original = (ROOT / "manifests" / source).read_text()
    assert before in original, what
    broken = yaml.safe_load(original.replace(before, after, 1))
    text = yaml.safe_dump({"groups": broken["spec"]["groups"]}, sort_keys=False)
    proc = run_unit_tests(tmp_path, text)
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, what


def test_every_runbook_link_has_its_section() -> None:
    runbook = (ROOT / "docs" / "RUNBOOK.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in runbook.splitlines() if line.startswith("#")}
    links = {r["annotations"]["runbook"] for group in rules.rule_groups() for r in group["rules"] if "alert" in r}
    assert {link.split("#", 1)[1] for link in links} <= anchors


@pytest.mark.parametrize("webhook", ["https://hooks.slack.com/services/T0/B0/xyz", ""])
def test_the_alertmanager_configuration_is_valid(tmp_path: Path, webhook: str) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alerting.alertmanager_config("dev", webhook)))
    proc = subprocess.run([tool("amtool"), "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr
    assert f" - {4} inhibit rules" in proc.stdout and (" - 2 receivers" if webhook else " - 1 receivers") in proc.stdout


def test_a_dead_host_pages_once(tmp_path: Path) -> None:
    """amtool's own routing and inhibition logic over the generated configuration: HostDown silences
    the alerts of that host's services, not another host's."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alerting.alertmanager_config("dev", "https://hooks.slack.com/services/x")))
    routed = subprocess.run([tool("amtool"), "config", "routes", "test", "--config.file", str(config),
                             "alertname=PostgresDown", "host=pg-1"], capture_output=True, text=True, timeout=60)
    assert routed.stdout.strip() == "slack", routed.stdout + routed.stderr
    watchdog = subprocess.run([tool("amtool"), "config", "routes", "test", "--config.file", str(config),
                               "alertname=Watchdog"], capture_output=True, text=True, timeout=60)
    assert watchdog.stdout.strip() == "nowhere"
    inhibit = alerting.alertmanager_config("dev", "x")["inhibit_rules"][0]
    assert inhibit == {"source_matchers": ['alertname = "HostDown"'], "target_matchers": ['alertname != "HostDown"'],
                       "equal": ["host"]}


def test_the_generated_scrape_jobs_are_a_valid_prometheus_configuration(tmp_path: Path) -> None:
    from nornos_infra.monitoring.scrape import Monitored, scrape_configs

    hosts = [Monitored("nornos-dev-postgres-1", "postgres", "10.0.1.3"),
             Monitored("nornos-dev-redis-1", "redis", "10.0.1.4"),
             Monitored("nornos-dev-workers-1", "k3s_agent", "10.0.1.5")]
    rules.write_rule_file(tmp_path / "nornos-rules.yaml")
    for interval, timeout in (("30s", "10s"), ("5s", "4s")):  # the cluster's, and the e2e test's
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({"rule_files": ["nornos-rules.yaml"],
                                          "scrape_configs": scrape_configs("dev", hosts, interval, timeout)}))
        proc = subprocess.run([tool("promtool"), "check", "config", str(config)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr
