"""How fast one user may send frames: a token bucket, and what to do with a client that keeps pushing."""

from __future__ import annotations

import enum
import time
from typing import Callable


class Admission(enum.Enum):
    ADMITTED = "admitted"
    LIMITED = "limited"  # refuse this frame with `rate_limited`; the socket stays open
    EXCEEDED = "exceeded"  # refused again and again without backing off: close with 4429


class RateLimiter:
    """A token bucket: `burst` frames at once, then `per_second` on average.

    Refused frames count as strikes until the client backs off long enough
    for the bucket to fill up again; `strikes` refusals before that closes
    the socket. A client that slows down when told is never closed.
    """

    __slots__ = ("_per_second", "_burst", "_strikes_allowed", "_clock", "_tokens", "_updated", "_strikes")

    def __init__(self, per_second: float, burst: int, strikes: int, clock: Callable[[], float] = time.monotonic):
        self._per_second = per_second
        self._burst = float(burst)
        self._strikes_allowed = strikes
        self._clock = clock
        self._tokens = self._burst
        self._updated = clock()
        self._strikes = 0

    def admit(self) -> Admission:
        """Take a token for one frame, if there is one."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._per_second)
        self._updated = now
        if self._tokens >= self._burst:
            self._strikes = 0
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return Admission.ADMITTED
        self._strikes += 1
        return Admission.EXCEEDED if self._strikes > self._strikes_allowed else Admission.LIMITED
