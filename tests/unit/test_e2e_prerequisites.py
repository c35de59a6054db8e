"""e2e prerequisites: skipped with the reason outside CI, a failure under CI=true (issue 16:
a CI run must not pass having tested nothing on real hosts)."""

from __future__ import annotations

from typing import Any

import pytest
from _pytest.outcomes import Failed, Skipped

from tests.e2e import conftest as e2e_conftest
from tests.e2e.prerequisites import decide, in_ci, skip_or_fail


@pytest.mark.parametrize(("environ", "expected"), [
    ({"CI": "true"}, True), ({"CI": "TRUE"}, True), ({"CI": "1"}, True), ({"CI": "yes"}, True),
    ({"CI": "false"}, False), ({"CI": ""}, False), ({}, False), ({"CI": "0"}, False),
])
def test_in_ci(environ: dict[str, str], expected: bool) -> None:
    assert in_ci(environ) is expected


def test_decide() -> None:
    assert decide("real hosts need root", ci=False) == ("skip", "real hosts need root")
    assert decide("real hosts need root", ci=True) == (
        "fail", "CI=true, and this test cannot run here: real hosts need root")


def test_skip_or_fail_raises_the_outcome() -> None:
    with pytest.raises(Skipped, match="missing systemd-nspawn"):
        skip_or_fail("missing systemd-nspawn", {})
    with pytest.raises(Failed, match="CI=true, and this test cannot run here: missing systemd-nspawn"):
        skip_or_fail("missing systemd-nspawn", {"CI": "true"})


class _Item:
    def __init__(self, e2e: bool) -> None:
        self.e2e = e2e

    def get_closest_marker(self, name: str) -> Any:
        return object() if name == "e2e" and self.e2e else None


def test_e2e_setup_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(e2e_conftest, "REASON", "real hosts need root")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="e2e on real hosts: real hosts need root"):
        e2e_conftest.pytest_runtest_setup(_Item(e2e=True))  # type: ignore[arg-type]
    e2e_conftest.pytest_runtest_setup(_Item(e2e=False))  # type: ignore[arg-type]  # not e2e: runs
    monkeypatch.delenv("CI")
    with pytest.raises(Skipped, match="e2e on real hosts: real hosts need root"):
        e2e_conftest.pytest_runtest_setup(_Item(e2e=True))  # type: ignore[arg-type]
    monkeypatch.setattr(e2e_conftest, "REASON", None)
    monkeypatch.setenv("CI", "true")
    e2e_conftest.pytest_runtest_setup(_Item(e2e=True))  # type: ignore[arg-type]  # can run: runs
