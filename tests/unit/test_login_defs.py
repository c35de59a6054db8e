"""The hardening role's /etc/login.defs settings, run with pyinfra's own grep and sed commands
against this Debian machine's real login.defs (package `login`, on every Debian system).

Regression: the pattern was ``^#?UMASK\\s``; in the basic regular expressions pyinfra's grep
and sed use, ``?`` is a literal, so nothing matched and every first deploy appended a second
``UMASK 027`` below Debian's ``UMASK 022`` (Lynis AUTH-9328 still saw 022).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pyinfra.facts.files import FindInFile
from pyinfra.operations.util.files import adjust_regex, sed_replace

from nornos_infra.roles.hardening import (
    LOGIN_DEFS,
    count_login_defs_command,
    dedupe_login_defs_command,
    login_defs_pattern,
)

DEBIAN_LOGIN_DEFS = Path("/etc/login.defs")


@pytest.fixture
def login_defs(tmp_path: Path) -> Path:
    assert DEBIAN_LOGIN_DEFS.is_file(), "this test needs Debian's /etc/login.defs (package login)"
    copy = tmp_path / "login.defs"
    shutil.copyfile(DEBIAN_LOGIN_DEFS, copy)
    return copy


def sh(command: str) -> str:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout


def setting_lines(path: Path, key: str) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.split()[:1] == [key]]


@pytest.mark.parametrize("key", sorted(LOGIN_DEFS))
def test_pyinfra_finds_the_line_debian_ships_for_each_key(login_defs: Path, key: str) -> None:
    found = sh(FindInFile().command(str(login_defs), login_defs_pattern(key)).get_raw_value())
    lines = found.splitlines()
    assert len(lines) == 1, f"{key}: {lines}"
    assert lines[0].lstrip("#").split()[0] == key


@pytest.mark.parametrize("key", sorted(LOGIN_DEFS))
def test_the_setting_replaces_debians_line_instead_of_adding_one(login_defs: Path, key: str) -> None:
    before = login_defs.read_text().count("\n")
    replacement = f"{key}\t\t{LOGIN_DEFS[key]}"
    sh(sed_replace(str(login_defs), adjust_regex(login_defs_pattern(key), False), replacement).get_raw_value())
    assert setting_lines(login_defs, key) == [replacement]
    assert login_defs.read_text().count("\n") == before


def test_hosts_deployed_before_the_fix_lose_the_appended_copies(login_defs: Path) -> None:
    for key, value in LOGIN_DEFS.items():
        sh(sed_replace(str(login_defs), adjust_regex(login_defs_pattern(key), False),
                       f"{key}\t\t{value}").get_raw_value())
    healthy = login_defs.read_text()
    # what the old pattern left: every setting appended once more at the end
    login_defs.write_text(healthy + "".join(f"{key}\t\t{value}\n" for key, value in LOGIN_DEFS.items()))
    assert int(sh(count_login_defs_command(str(login_defs)))) == 2 * len(LOGIN_DEFS)

    sh(dedupe_login_defs_command(str(login_defs)))

    assert login_defs.read_text() == healthy
    assert int(sh(count_login_defs_command(str(login_defs)))) == len(LOGIN_DEFS)
    assert not list(login_defs.parent.glob("*.nornos"))
