"""Alertmanager's configuration: every alert to Slack (the env's ``slack_webhook_url``, the seed's
SLACK_WEBHOOK_URL), grouped by alert and host, resolved alerts sent too, and inhibition so that
one cause pages once:

- HostDown silences every other alert of that host (its services, its backups, its k3s node);
- PostgresDown silences PostgreSQL's connection, WAL archiving and backup alerts of that host,
  RedisDown Redis's;
- a critical alert silences a warning of the same name and host.

Without a webhook in the secrets, alerts go to a receiver that sends nothing, and the generated
Secret says so in its annotation (``invoke manifests`` shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SLACK_TITLE = ('[{{ .Status | toUpper }}] nornos @ENV@: {{ .CommonLabels.alertname }}'
               '{{ if .CommonLabels.host }} on {{ .CommonLabels.host }}{{ end }}')
SLACK_TEXT = ('{{ range .Alerts }}{{ .Annotations.summary }}'
              '{{ if .Annotations.runbook }} (runbook: {{ .Annotations.runbook }}){{ end }}\n{{ end }}')


@dataclass(frozen=True)
class Timing:
    group_wait: str = "30s"  # the first alerts of a group wait this long for others of the same cause
    group_interval: str = "5m"  # then news of the group (new alerts, resolved ones) at most this often
    repeat_interval: str = "4h"  # a page still firing is sent again after this


def alertmanager_config(env: str, slack_webhook_url: str, timing: Timing = Timing()) -> dict[str, Any]:
    receivers: list[dict[str, Any]] = [{"name": "nowhere"}]
    if slack_webhook_url:
        receivers.insert(0, {"name": "slack", "slack_configs": [{
            "api_url": slack_webhook_url, "send_resolved": True,
            "title": SLACK_TITLE.replace("@ENV@", env), "text": SLACK_TEXT}]})
    return {
        "route": {
            "receiver": "slack" if slack_webhook_url else "nowhere",
            "group_by": ["alertname", "host"],
            "group_wait": timing.group_wait, "group_interval": timing.group_interval,
            "repeat_interval": timing.repeat_interval,
            # kube-prometheus-stack's Watchdog fires always, to prove the pipeline; it pages nobody
            "routes": [{"receiver": "nowhere", "matchers": ['alertname = "Watchdog"']}],
        },
        "inhibit_rules": [
            {"source_matchers": ['alertname = "HostDown"'], "target_matchers": ['alertname != "HostDown"'],
             "equal": ["host"]},
            {"source_matchers": ['alertname = "PostgresDown"'],
             "target_matchers": ['alertname =~ "PostgresConnectionsNearLimit|WalArchivingFailing|BackupFailed'
                                 '|BackupTooOld|PitrBackupTooOld"'], "equal": ["host"]},
            {"source_matchers": ['alertname = "RedisDown"'],
             "target_matchers": ['alertname =~ "RedisEvicting|RedisMemoryHigh|BackupFailed|BackupTooOld"'],
             "equal": ["host"]},
            {"source_matchers": ['severity = "critical"'], "target_matchers": ['severity = "warning"'],
             "equal": ["alertname", "host"]},
        ],
        "receivers": receivers,
    }
