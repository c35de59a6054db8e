"""The v1 API, one module per resource family; importing this package registers every route."""

from localcloud.api import (  # noqa: F401
    actions,
    firewalls,
    images,
    load_balancers,
    networks,
    placement_groups,
    primary_ips,
    products,
    servers,
    ssh_keys,
    volumes,
)
