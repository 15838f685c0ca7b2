"""Client-side quota: requests and tokens per minute, shared by the concurrent calls of a job.

Two token buckets refill continuously at the configured per-minute rates and hold at most
``burst_seconds`` worth, so calls go out at a steady rate instead of a burst that the
server would answer with 429s. Token use is estimated before a call and corrected with the
real count after it. A 429 pauses every caller for the server's retry delay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


class _Bucket:
    def __init__(self, per_minute: float | None, burst_seconds: float, now: float):
        self.rate = None if not per_minute else per_minute / 60.0
        self.capacity = 0.0 if self.rate is None else max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        if self.rate is not None:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 when it is, or when unlimited)."""
        if self.rate is None:
            return 0.0
        # A single request larger than the bucket waits for a full bucket, then goes.
        need = min(amount, self.capacity) - self.level
        return max(0.0, need / self.rate)


class RateLimiter:
    def __init__(
        self,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        burst_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ):
        # Both replaceable so that a test runs the limiter on a virtual clock and checks the
        # waits it asks for, not how long the wall clock says it took.
        self.clock = clock
        self.sleep = sleep
        now = clock()
        self.requests = _Bucket(requests_per_minute, burst_seconds, now)
        self.tokens = _Bucket(tokens_per_minute, burst_seconds, now)
        self.paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: float) -> None:
        """Wait until one request of about ``tokens`` input tokens fits the quota, then take it."""
        async with self._lock:
            while True:
                now = self.clock()
                self.requests.refill(now)
                self.tokens.refill(now)
                wait = max(
                    self.paused_until - now,
                    self.requests.wait_for(1.0),
                    self.tokens.wait_for(tokens),
                )
                if wait <= 0:
                    self.requests.level -= 1.0 if self.requests.rate else 0.0
                    self.tokens.level -= tokens if self.tokens.rate else 0.0
                    return
                await self.sleep(wait)

    def settle(self, estimated: float, actual: float | None) -> None:
        """Charge the difference between the real and the estimated token count."""
        if actual is not None and self.tokens.rate is not None:
            self.tokens.level -= actual - estimated

    def pause(self, seconds: float) -> None:
        """Hold every caller back, e.g. for the retry delay of a 429."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)
