"""`invoke manifests` reads addresses from the generated inventory and says what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from nornos_infra.errors import UserError
from nornos_infra.kube import from_inventory

INVENTORY = """
_common = {'env': 'dev'}
k3s_servers = ([('nornos-dev-control-plane-1', {'private_ip': '10.0.1.1'})], dict(_common))
postgres = ([('nornos-dev-postgres-1', {'private_ip': '10.0.1.3'})], dict(_common))
redis = ([('nornos-dev-redis-1', {'private_ip': '10.0.1.4'})], dict(_common))
"""


def test_endpoints_come_from_the_inventory(tmp_path: Path) -> None:
    path = tmp_path / "dev.py"
    path.write_text(INVENTORY)
    endpoints = from_inventory.endpoints_from(path)
    assert (endpoints.postgres_host, endpoints.redis_host) == ("10.0.1.3", "10.0.1.4")


def test_missing_pieces_are_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match=r"provision\.py"):
        from_inventory.endpoints_from(tmp_path / "nope.py")
    path = tmp_path / "dev.py"
    path.write_text(INVENTORY.replace("redis = ", "_redis = "))
    with pytest.raises(UserError, match="no redis host"):
        from_inventory.endpoints_from(path)
