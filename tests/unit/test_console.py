"""The one line a user sees for an error nobody expected (provision.py, the cost table), and the
traceback only on request."""

from __future__ import annotations

import pytest

from nornos_infra import console


def _raise() -> None:
    raise KeyError("x" * 300)


def test_unexpected_is_one_line_and_the_traceback_only_with_nornos_debug(capsys: pytest.CaptureFixture[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.delenv("NORNOS_DEBUG", raising=False)
    try:
        _raise()
    except KeyError as exc:
        console.unexpected(exc, "nothing after it was changed; ")
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith("error: unexpected error: KeyError: 'xxxx")
        assert err.rstrip().endswith("nothing after it was changed; run again with NORNOS_DEBUG=1 for the "
                                     "traceback and report it")
        monkeypatch.setenv("NORNOS_DEBUG", "1")
        console.unexpected(exc)
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "in _raise" in err
        assert err.rstrip().endswith("error: unexpected error: KeyError: '" + "x" * 199 + "; run again with "
                                     "NORNOS_DEBUG=1 for the traceback and report it")
