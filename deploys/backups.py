"""Backups alone: pyinfra inventories/<env>.py deploys/backups.py"""

from pyinfra import host

from nornos_infra.roles import backups, pitr

if "postgres" in host.groups:
    backups.postgres_backups()
    pitr.pitr()
if "redis" in host.groups:
    backups.redis_backups()
