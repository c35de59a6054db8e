"""inventories/<env>.py: its typed model and loader (model), how provision.py builds it from the
env file and the cloud (from_cloud), and its text (text)."""

from nornos_infra.inventory.from_cloud import FORBIDDEN, Access, build, known_hosts
from nornos_infra.inventory.model import (
    HOST_DATA,
    ROLE_DEFAULTS,
    SSH_USER,
    TEAM_KEYS,
    Host,
    HostData,
    Inventory,
    SharedData,
    load,
)
from nornos_infra.inventory.text import render, write
from nornos_infra.vocabulary import GROUPS

__all__ = ["FORBIDDEN", "GROUPS", "HOST_DATA", "ROLE_DEFAULTS", "SSH_USER", "TEAM_KEYS", "Access", "Host", "HostData",
           "Inventory", "SharedData", "build", "known_hosts", "load", "render", "write"]
