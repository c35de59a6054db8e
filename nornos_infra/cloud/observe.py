"""Observe an environment by label: one list call per resource kind, whatever its size.

Networks are read first so that servers and load balancers can name theirs; placement
groups and servers before volumes for the same reason.
"""

from __future__ import annotations

from nornos_infra.cloud.connection import Connection
from nornos_infra.cloud.model import ENV_LABEL, KINDS, MANAGED_LABEL, MANAGED_VALUE, Observed, env_selector
from nornos_infra.cloud.resources import HANDLERS, Index


def observe(conn: Connection, env: str, foreign_keys: list[Observed] | None = None) -> list[Observed]:
    """Everything labelled for the env. SSH keys are listed whole (same one call): a key the
    team already uploaded under another name is used as it is, and goes into ``foreign_keys``."""
    selector = env_selector(env)
    index = Index()
    observed: list[Observed] = []
    for kind in KINDS:
        handler = HANDLERS[kind]
        params = {} if kind == "ssh_key" else {"label_selector": selector}
        for raw in conn.list_all(handler.path, handler.key, params):
            item = handler.observe(raw, index)
            if kind == "ssh_key" and not _ours(item, env):
                if foreign_keys is not None:
                    foreign_keys.append(item)
                continue
            index.add(kind, item.name, item.id)
            observed.append(item)
    return observed


def _ours(item: Observed, env: str) -> bool:
    return item.labels.get(ENV_LABEL) == env and item.labels.get(MANAGED_LABEL) == MANAGED_VALUE


def observe_cluster_leftovers(conn: Connection, observed: list[Observed]) -> list[Observed]:
    """What the cluster made for itself and labelled its own way: load balancers the cloud
    controller attached to our network, volumes the CSI driver attached to our servers.

    Two more list calls, made only for ``--destroy``, so nothing of the env is left billing.
    """
    index = Index.of(observed)
    known = {(o.kind, o.id) for o in observed}
    network_ids = {o.id for o in observed if o.kind == "network"}
    server_ids = {o.id for o in observed if o.kind == "server"}
    extra: list[Observed] = []
    lbs = HANDLERS["load_balancer"]
    for raw in conn.list_all(lbs.path, lbs.key):
        if ("load_balancer", raw["id"]) not in known and any(p["network"] in network_ids
                                                             for p in raw.get("private_net", [])):
            extra.append(lbs.observe(raw, index))
    volumes = HANDLERS["volume"]
    for raw in conn.list_all(volumes.path, volumes.key):
        if ("volume", raw["id"]) not in known and raw.get("server") in server_ids:
            extra.append(volumes.observe(raw, index))
    return extra
