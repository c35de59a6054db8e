"""Load balancers: services, targets, networks and the public interface.

Stored: the API shape for ``services``, ``targets`` (as requested: label-selector targets
are expanded to the matching servers at render time), ``private_net: [{network, ip}]``
(the only record of network attachments) and ``public_net``; ``_location`` (name) and
``_type`` (id) point into the catalogue. Changes apply when the request is accepted, so
the next request validates against them; a failed action restores the previous value.
With ``--hosts nspawn`` every change is also made real (:func:`machines_follow`:
HAProxy in a namespace of its own, ``hosts/loadbalancer.py``) and target health comes from
its health checks.
"""

# importing the package registers the routes and the handlers of actions and events
from localcloud.api.load_balancers import actions, effects, routes  # noqa: F401
from localcloud.api.load_balancers.effects import all_follow, machines_follow

__all__ = ["all_follow", "machines_follow"]
