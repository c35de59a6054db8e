"""Environment files (environments/<env>.yaml): the desired state, read and validated
before any API call. Every problem is reported on its own line with the path to the
offending key, so a wrong file is fixed in one pass.

model.py: the keys, their types and single-key checks; loading.py: reading and validating a
file; rules.py: the rules that span keys.
"""

from nornos_infra.spec.loading import load, merge, read_yaml
from nornos_infra.spec.model import (
    BUCKET_RE,
    DEFAULT_PUBLIC_KEY_FILE,
    DOCUMENTATION_NETWORKS,
    ENV_VAR_RE,
    EU_LOCATIONS,
    MAX_ADMIN_IPV4,
    MAX_ADMIN_IPV6,
    MAX_SERVERS_PER_NETWORK,
    NAME_RE,
    NON_EU_LOCATIONS,
    PUBLIC_KEY_RE,
    TAINT_RE,
    WIDE_ADMIN_FLAG,
    BackupsSpec,
    EnvSpec,
    K3sSpec,
    LoadBalancerSpec,
    NetworkSpec,
    PoolSpec,
    SopsSpec,
    SSHKeySpec,
    resolve_path,
)
from nornos_infra.spec.rules import admin_span, check_name, check_rules, placeholder_cidrs, wide_admin_problems

__all__ = ["BUCKET_RE", "DEFAULT_PUBLIC_KEY_FILE", "DOCUMENTATION_NETWORKS", "ENV_VAR_RE", "EU_LOCATIONS",
           "MAX_ADMIN_IPV4", "MAX_ADMIN_IPV6", "MAX_SERVERS_PER_NETWORK", "NAME_RE", "NON_EU_LOCATIONS",
           "PUBLIC_KEY_RE", "TAINT_RE", "WIDE_ADMIN_FLAG", "BackupsSpec", "EnvSpec", "K3sSpec",
           "LoadBalancerSpec", "NetworkSpec", "PoolSpec", "SSHKeySpec", "SopsSpec", "admin_span", "check_name",
           "check_rules", "load", "merge", "placeholder_cidrs", "read_yaml", "resolve_path", "wide_admin_problems"]
