"""The v1 API, one module per resource family; importing this package registers every route."""

from localcloud.api import actions, catalog, ssh_keys  # noqa: F401

# Families register their routes on import; keep this list in sync with the modules.
