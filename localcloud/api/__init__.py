"""The v1 API, one module per resource family; importing this package registers every route."""

from localcloud.api import (  # noqa: F401
    actions,
    catalog,
    firewalls,
    images,
    load_balancers,
    networks,
    placement_groups,
    primary_ips,
    servers,
    ssh_keys,
    volumes,
)
