"""What Prometheus and Alertmanager are told, generated from the inventory and the env's secrets.

- ``scrape``: the scrape jobs for the VMs' exporters (node on every host, postgres, redis), each
  target labelled with its host, role and env, so adding a host needs no hand edit;
- ``alerting``: Alertmanager's configuration: Slack with the env's webhook, grouped by alert and
  host, and inhibition so that a dead host pages once;
- ``rules``: the alert rules of manifests/addons/monitoring-rules.yaml as Prometheus reads them
  (rule files for promtool and for a Prometheus outside Kubernetes).
"""
