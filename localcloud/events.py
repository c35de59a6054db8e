"""Cross-resource consequences, decoupled: ``@subscribe("server.deleted")``.

When a server goes away, firewalls drop it from ``applied_to``, load balancers drop it
as a target, volumes detach and networks forget it; each family subscribes to the events
it cares about instead of the server module knowing them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.cloud import Cloud

Listener = Callable[..., None]
_LISTENERS: dict[str, list[Listener]] = {}

# Events in use (keyword arguments in brackets):
#   server.created [server], server.deleted [server], server.labels_changed [server],
#   server.network_changed [server], server.public_net_changed [server], network.deleted [network]


def subscribe(event: str) -> Callable[[Listener], Listener]:
    def register(fn: Listener) -> Listener:
        _LISTENERS.setdefault(event, []).append(fn)
        return fn

    return register


def emit(cloud: Cloud, event: str, **kwargs: Any) -> None:
    for fn in _LISTENERS.get(event, []):
        fn(cloud, **kwargs)
