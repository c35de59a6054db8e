"""provision.py's access checks before any change: the shipped placeholder admin_cidrs and a
lock-out warn on a plan and refuse an apply; localcloud's own documentation address passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from nornos_infra import provisioning
from nornos_infra.errors import UserError
from tests.unit.test_spec import load_raw, shipped_raw


def _opts(**flags: bool) -> provisioning.Options:
    return provisioning.Options(env="dev", env_dir=Path("environments"), inventory_dir=Path("inventories"), **flags)


def test_placeholder_admin_cidrs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = load_raw(shipped_raw("dev"), tmp_path)
    with pytest.raises(UserError, match=r"^admin_cidrs 203\.0\.113\.0/24 is a documentation placeholder"):
        provisioning._check_placeholders(spec, _opts(), local=False)
    provisioning._check_placeholders(spec, _opts(dry_run=True), local=False)
    provisioning._check_placeholders(spec, _opts(check=True), local=False)
    assert capsys.readouterr().err.count("warning: admin_cidrs 203.0.113.0/24 is a documentation placeholder") == 2
    provisioning._check_placeholders(spec, _opts(), local=True)  # localcloud's 198.51.100.1 is one too
    real = shipped_raw("dev")
    real["admin_cidrs"] = ["10.8.0.0/16", "2a01:4f8:c0c::/48"]
    provisioning._check_placeholders(load_raw(real, tmp_path), _opts(), local=False)
