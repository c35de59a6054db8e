"""SCRAM verifiers: the same bytes PostgreSQL computes (RFC 7677 test vector style check)."""

from __future__ import annotations

import base64

from nornos_infra.roles import scram


def test_known_vector() -> None:
    # RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    made = scram.verifier("pencil", salt, 4096)
    assert made == ("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=")


def test_matches_only_the_right_password() -> None:
    made = scram.verifier("s3cret")
    assert scram.matches("s3cret", made)
    assert not scram.matches("other", made)
    assert not scram.matches("s3cret", "")
    assert not scram.matches("s3cret", "md5abc")
    assert scram.verifier("s3cret") != made  # a fresh salt each time
