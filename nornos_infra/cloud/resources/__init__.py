"""One module per resource kind; HANDLERS maps each kind to the code that reads, compares and changes it."""

from nornos_infra.cloud.resources.base import Ctx, Index, Kind, Verdict
from nornos_infra.cloud.resources.firewalls import Firewalls
from nornos_infra.cloud.resources.load_balancers import LoadBalancers
from nornos_infra.cloud.resources.networks import Networks
from nornos_infra.cloud.resources.placement_groups import PlacementGroups
from nornos_infra.cloud.resources.servers import Servers
from nornos_infra.cloud.resources.ssh_keys import SSHKeys
from nornos_infra.cloud.resources.volumes import Volumes

HANDLERS: dict[str, Kind] = {h.kind: h for h in (SSHKeys(), Networks(), Firewalls(), PlacementGroups(), Servers(),
                                                  Volumes(), LoadBalancers())}

__all__ = ["HANDLERS", "Ctx", "Index", "Kind", "Verdict"]
