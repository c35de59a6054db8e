"""invoke restore's arguments: refused in one line before any host is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from nornos_infra import restore
from nornos_infra.errors import UserError

NO_INVENTORY = Path("/nonexistent/inventories/dev.py")


@pytest.mark.parametrize(("given", "target"), [
    ("2026-12-01 10:15", "2026-12-01 10:15:00+00"),
    ("2026-12-01T10:15:30", "2026-12-01 10:15:30+00"),
    ("2026-12-01 11:15:30+01:00", "2026-12-01 10:15:30+00"),
])
def test_a_moment_is_read_as_utc_unless_it_says_otherwise(given: str, target: str) -> None:
    assert restore.parse_time(given) == target


@pytest.mark.parametrize(("given", "said"), [
    ("yesterday", "give a time such as"),
    ("2026-13-01 10:00", "give a time such as"),
    ("2999-01-01 00:00", "is in the future"),
])
def test_a_bad_moment_is_one_line(given: str, said: str) -> None:
    with pytest.raises(UserError, match=said):
        restore.parse_time(given)


def test_without_yes_nothing_is_touched() -> None:
    with pytest.raises(UserError, match="nothing was changed: re-run with --yes"):
        restore.to_time(NO_INVENTORY, "2026-12-01 10:15", yes=False)
    with pytest.raises(UserError, match="nothing was changed: re-run with --yes"):
        restore.database(NO_INVENTORY, "dev", "patient_app", "latest", yes=False)


@pytest.mark.parametrize(("db", "source", "said"), [
    ("patient_app; drop", "latest", "is not a database name"),
    ("Patient", "latest", "is not a database name"),
])
def test_names_never_reach_a_shell(db: str, source: str, said: str) -> None:
    with pytest.raises(UserError, match=said):
        restore.database(NO_INVENTORY, "dev", db, source, yes=True)


def test_a_dump_path_with_shell_words_is_refused() -> None:
    with pytest.raises(UserError, match="give latest, offsite or a dump file's path"):
        restore.database(NO_INVENTORY, "dev", "patient_app", "x'; rm -rf /", yes=True)
