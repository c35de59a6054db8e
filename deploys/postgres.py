"""PostgreSQL alone: pyinfra inventories/<env>.py deploys/postgres.py --limit postgres"""

from pyinfra import host

from nornos_infra.roles import postgres

if "postgres" in host.groups:
    postgres.postgresql()
