"""``invoke upgrade --env E --k3s VERSION``: k3s upgraded one node at a time, servers first.

- ``nodes``: the node and pod calls to the Kubernetes API (cordon, Ready, evictions).
- ``drain``: kubectl drain's rules on top of them, PodDisruptionBudgets respected.
- ``swap``: the checksum-pinned binary put in place on a host and k3s restarted.
- ``rolling``: the order, the version checks, each node's steps, and where a stopped run resumes.
"""
