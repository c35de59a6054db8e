"""Servers: create (with public/private networking, firewalls, volumes, placement), list,
update, delete, and the server actions (power, type, networks, images, rescue, ...).

Status changes follow the actions: a handler sets the transitional status when the action
starts (``starting``, ``stopping``, ``migrating``, ``rebuilding``) and a completion handler
sets the final one, so clients that poll see the same sequence as on the real API.
Everything a server is linked to that another family owns (firewalls, volumes, load
balancers, placement groups) is computed from those documents at render time.

By concern: ``bodies`` (request bodies), ``document`` (the document, its look-ups and how it
renders), ``routes`` (collection and one server), ``create`` (POST /servers in named steps),
``actions`` (the server actions) and ``effects`` (completion handlers, events, the machine).
"""

# importing the package registers the routes and the handlers of actions and events
from localcloud.api.servers import actions, create, effects, routes  # noqa: F401
