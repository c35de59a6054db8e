"""Redis alone: pyinfra inventories/<env>.py deploys/redis.py --limit redis"""

from pyinfra import host

from nornos_infra.roles import redis

if "redis" in host.groups:
    redis.redis()
