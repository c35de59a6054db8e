"""The firewall role alone: pyinfra inventories/<env>.py deploys/firewall.py"""

from nornos_infra.roles import firewall

firewall.firewall()
