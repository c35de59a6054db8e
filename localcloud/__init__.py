"""localcloud: a local Hetzner Cloud API (and, in nspawn mode, real Debian servers).

Point hcloud-python or the hcloud CLI at it with ``HCLOUD_ENDPOINT=http://127.0.0.1:<port>/v1``.
"""

__version__ = "0.1.0"
