"""The base role alone: pyinfra inventories/<env>.py deploys/base.py"""

from nornos_infra.roles import base

base.base()
