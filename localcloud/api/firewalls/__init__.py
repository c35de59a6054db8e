"""Firewalls: rules, and where they apply (servers directly or by label selector).

Only the firewall records where it applies (``applied_to``); the servers a label selector
reaches are computed at render time from the servers' current labels, so they stay right
as servers come, go and change labels. The servers family asks
:func:`firewalls_for_server` for a server's firewalls and calls :func:`apply_to_server`
when a server is created with ``firewalls``.

Decisions where the spec leaves room:
- Changes take effect in the reply; the ``apply_firewall`` / ``remove_firewall`` /
  ``set_firewall_rules`` actions only report them, and undo them if they fail (injected
  fault). With real hosts they end once the filters on this machine follow
  (:func:`machines_follow`, ``hosts/firewall.py``).
- Removing a server that a label selector of the firewall matches answers
  ``firewall_managed_by_label_selector`` even if it was also applied directly (the direct
  entry cannot be dropped while the selector holds it); removing what is not applied
  answers ``firewall_already_removed``.
- A server may be reached by at most 5 firewalls (``resource_limit_exceeded``).
"""

# importing the package registers the routes and the handlers of actions and events
from localcloud.api.firewalls import effects, routes  # noqa: F401
from localcloud.api.firewalls.document import firewalls_for_server
from localcloud.api.firewalls.effects import guarded_servers, machines_follow
from localcloud.api.firewalls.routes import apply_to_server

__all__ = ["apply_to_server", "firewalls_for_server", "guarded_servers", "machines_follow"]
