"""Rate limit: a bucket of ``limit`` requests refilling limit/3600 per second, and its headers."""

from __future__ import annotations

import pytest

from localcloud.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refuses() -> None:
    clock = Clock()
    rl = RateLimiter(5, clock)
    assert [rl.take() for _ in range(6)] == [True] * 5 + [False]


def test_refills_one_per_second_at_3600_per_hour() -> None:
    clock = Clock()
    rl = RateLimiter(3600, clock)
    rl.configure(3600, remaining=0)
    assert not rl.take()
    clock.now += 0.5
    assert not rl.take()
    clock.now += 0.5
    assert rl.take()
    assert not rl.take()
    clock.now += 10
    assert sum(rl.take() for _ in range(20)) == 10


def test_refill_never_exceeds_the_limit() -> None:
    clock = Clock()
    rl = RateLimiter(10, clock)
    clock.now += 100_000
    assert sum(rl.take() for _ in range(20)) == 10


def test_headers() -> None:
    clock = Clock()
    rl = RateLimiter(3600, clock)
    assert rl.headers() == {"RateLimit-Limit": "3600", "RateLimit-Remaining": "3600",
                            "RateLimit-Reset": str(int(clock.now))}
    for _ in range(10):
        rl.take()
    h = rl.headers()
    assert h["RateLimit-Remaining"] == "3590"
    assert h["RateLimit-Reset"] == str(int(clock.now) + 10)  # one per second until full
    rl.configure(7200, remaining=0)
    assert rl.headers() == {"RateLimit-Limit": "7200", "RateLimit-Remaining": "0",
                            "RateLimit-Reset": str(int(clock.now) + 3600)}


def test_configure_refills_and_validates() -> None:
    clock = Clock()
    rl = RateLimiter(3, clock)
    for _ in range(3):
        rl.take()
    rl.configure(3)
    assert rl.take()
    rl.configure(3, remaining=99)  # capped at the limit
    assert sum(rl.take() for _ in range(5)) == 3
    with pytest.raises(ValueError):
        rl.configure(-1)
    with pytest.raises(ValueError):
        rl.configure(10, remaining=-1)


def test_zero_limit_refuses_everything() -> None:
    rl = RateLimiter(0, Clock())
    assert not rl.take()
    assert rl.headers()["RateLimit-Remaining"] == "0"
