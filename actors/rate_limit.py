"""How fast one user may send: token buckets for frames, for `message` frames and for the bytes they store.

A person never meets these limits; a script always does (docs/security.md).
Each bucket refills continuously; what one refuses is answered `rate_limited`
and dropped. The frame and message buckets also count refusals as strikes, so
a client that keeps pushing without backing off is told to go (4429).
"""

from __future__ import annotations

import enum
import time
import weakref
from dataclasses import dataclass
from typing import Callable

SWEEP_AT_LEAST = 1024  # limiters of stopped actors kept before the first look for rested ones


class Admission(enum.Enum):
    ADMITTED = "admitted"
    LIMITED = "limited"  # refuse this frame with `rate_limited`; the socket stays open
    EXCEEDED = "exceeded"  # refused again and again without backing off: close with 4429


class RateLimiter:
    """A token bucket: `burst` tokens at once, then `per_second` on average; a frame takes `cost` of them.

    With `strikes`, refusals count as strikes until the client backs off long
    enough for the bucket to fill up again; `strikes` refusals before that
    answer EXCEEDED. A client that slows down when told is never closed.
    Without `strikes`, a refusal is only ever LIMITED.
    """

    __slots__ = ("_per_second", "_burst", "_strikes_allowed", "_clock", "_tokens", "_updated", "_strikes")

    def __init__(
        self, per_second: float, burst: float, strikes: int | None, clock: Callable[[], float] = time.monotonic
    ):
        self._per_second = per_second
        self._burst = float(burst)
        self._strikes_allowed = strikes
        self._clock = clock
        self._tokens = self._burst
        self._updated = clock()
        self._strikes = 0

    def admit(self, cost: float = 1.0) -> Admission:
        """Take `cost` tokens, if there are that many."""
        self._refill()
        if self._tokens >= self._burst:
            self._strikes = 0
        if self._tokens >= cost:
            self._tokens -= cost
            return Admission.ADMITTED
        self._strikes += 1
        if self._strikes_allowed is not None and self._strikes > self._strikes_allowed:
            return Admission.EXCEEDED
        return Admission.LIMITED

    def is_full(self) -> bool:
        """The bucket is full again: from here on it behaves exactly like a new one."""
        self._refill()
        return self._tokens >= self._burst

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._per_second)
        self._updated = now


@dataclass(frozen=True, slots=True)
class SendRates:
    """The `[limits]` that say how fast one user may send."""

    frames_per_second: float
    frame_burst: int
    messages_per_second: float
    message_burst: int
    content_bytes_per_second: float
    content_bytes_burst: int
    strikes: int


class SendLimiter:
    """What one user may send on this node, all of its sockets together.

    Every frame takes a frame token. A `message` frame then takes a message
    token, and as many content tokens as its content has UTF-8 bytes: what a
    user can make the database store is bounded in rows and in bytes. Running
    out of content bytes never closes the socket (the content may be a paste a
    person retries later), so that bucket has no strikes.
    """

    __slots__ = ("_frames", "_messages", "_content_bytes", "__weakref__")

    def __init__(self, rates: SendRates, clock: Callable[[], float] = time.monotonic):
        self._frames = RateLimiter(rates.frames_per_second, rates.frame_burst, rates.strikes, clock)
        self._messages = RateLimiter(rates.messages_per_second, rates.message_burst, rates.strikes, clock)
        self._content_bytes = RateLimiter(rates.content_bytes_per_second, rates.content_bytes_burst, None, clock)

    def admit_frame(self) -> Admission:
        return self._frames.admit()

    def admit_message(self, content: str) -> Admission:
        """After `admit_frame`: a `message` frame's own tokens, one message and its content's bytes."""
        admission = self._messages.admit()
        if admission is not Admission.ADMITTED:
            return admission
        return self._content_bytes.admit(len(content.encode("utf-8")))

    def is_rested(self) -> bool:
        """Every bucket is full again: a new limiter would do the same."""
        return self._frames.is_full() and self._messages.is_full() and self._content_bytes.is_full()


class SendLimiters:
    """The send limiters of this node's users, kept while a user reconnects.

    A user actor stops with its user's last socket; if its limiter went with
    it, a script could close and reconnect for a fresh burst each time. So a
    stopped actor hands its limiter back, and it is kept until its buckets
    are full again. Running actors hold theirs (weakly referenced here, so a
    user's actors share one). Only user actors call this, as they start and
    stop, and never across a yield.
    """

    __slots__ = ("_rates", "_clock", "_max_users", "_running", "_spent", "_next_sweep")

    def __init__(self, rates: SendRates, max_users: int = 100_000, clock: Callable[[], float] = time.monotonic):
        self._rates = rates
        self._clock = clock
        self._max_users = max_users
        self._running: weakref.WeakValueDictionary[int, SendLimiter] = weakref.WeakValueDictionary()
        self._spent: dict[int, SendLimiter] = {}  # of stopped actors, not yet rested
        self._next_sweep = SWEEP_AT_LEAST

    def of(self, user_id: int) -> SendLimiter:
        """The user's limiter: its running actor's, or the one its last actor left spent, or a new one."""
        spent = self._spent.pop(user_id, None)
        limiter = self._running.get(user_id) or spent or SendLimiter(self._rates, self._clock)
        self._running[user_id] = limiter
        return limiter

    def release(self, user_id: int, limiter: SendLimiter) -> None:
        """The user's actor stopped: keep its limiter while it is spent."""
        if not limiter.is_rested():
            self._spent[user_id] = limiter
            if len(self._spent) >= self._next_sweep:
                self._sweep()

    def __len__(self) -> int:
        """Limiters kept for stopped actors."""
        return len(self._spent)

    def _sweep(self) -> None:
        """Forget the rested; at `max_users` still spending, the oldest half. Amortised: the next sweep waits
        until the survivors have doubled."""
        self._spent = {user_id: limiter for user_id, limiter in self._spent.items() if not limiter.is_rested()}
        if len(self._spent) >= self._max_users:
            self._spent = dict(list(self._spent.items())[len(self._spent) // 2 :])
        self._next_sweep = max(SWEEP_AT_LEAST, 2 * len(self._spent))
