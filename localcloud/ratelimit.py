"""The API's rate limit: a bucket of ``limit`` requests per hour refilling one per second."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, limit_per_hour: int = 3600, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.configure(limit_per_hour)

    def configure(self, limit_per_hour: int, remaining: int | None = None) -> None:
        """Set the hourly limit; the bucket starts full, or with ``remaining`` requests left."""
        if limit_per_hour < 0 or (remaining is not None and remaining < 0):
            raise ValueError("rate limit and remaining requests must be 0 or more")
        self.limit = limit_per_hour
        self.rate = limit_per_hour / 3600.0  # requests regained per second
        self.tokens = float(limit_per_hour if remaining is None else min(remaining, limit_per_hour))
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.limit), self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self) -> bool:
        """Spend one request; False when the bucket is empty (answer 429)."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def headers(self) -> dict[str, str]:
        remaining = math.floor(self.tokens)
        missing = self.limit - self.tokens
        reset = math.ceil(self.updated + (missing / self.rate if self.rate > 0 else 0))
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, remaining)),
            "RateLimit-Reset": str(reset),
        }
