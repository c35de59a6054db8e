"""k3s alone: pyinfra inventories/<env>.py deploys/k3s.py"""

from pyinfra import host

from nornos_infra.roles import k3s

if "k3s_servers" in host.groups:
    k3s.k3s_server()
if "k3s_agents" in host.groups:
    k3s.k3s_agent()
