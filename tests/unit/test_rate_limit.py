"""The per-user frame rate limiter: a token bucket with strikes, on a clock the tests move."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.rate_limit import Admission, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(per_second: float = 10, burst: int = 5, strikes: int = 3) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(per_second, burst, strikes, clock), clock


def test_a_full_burst_is_admitted_at_once_and_the_next_frame_is_limited():
    rate, _ = limiter(burst=5)
    assert [rate.admit() for _ in range(5)] == [Admission.ADMITTED] * 5
    assert rate.admit() is Admission.LIMITED


def test_tokens_come_back_at_the_configured_rate():
    rate, clock = limiter(per_second=10, burst=5)
    for _ in range(5):
        rate.admit()
    clock.now += 0.1  # one token
    assert rate.admit() is Admission.ADMITTED
    assert rate.admit() is Admission.LIMITED
    clock.now += 0.35  # three and a half tokens
    assert [rate.admit() for _ in range(4)] == [Admission.ADMITTED] * 3 + [Admission.LIMITED]


def test_the_bucket_never_holds_more_than_the_burst():
    rate, clock = limiter(per_second=10, burst=5)
    clock.now += 3600
    assert [rate.admit() for _ in range(6)] == [Admission.ADMITTED] * 5 + [Admission.LIMITED]


def test_a_client_that_keeps_pushing_is_told_to_go_after_its_strikes():
    rate, _ = limiter(burst=2, strikes=3)
    rate.admit(), rate.admit()
    assert [rate.admit() for _ in range(4)] == [Admission.LIMITED] * 3 + [Admission.EXCEEDED]


def test_a_client_sending_a_little_too_fast_keeps_collecting_strikes():
    """Tokens trickling in do not wipe the slate: only a full bucket, a real back-off, does."""
    rate, clock = limiter(per_second=10, burst=5, strikes=3)
    verdicts = []
    for _ in range(100):  # 20 frames a second against 10 allowed
        clock.now += 0.05
        verdicts.append(rate.admit())
    assert Admission.EXCEEDED in verdicts


def test_backing_off_until_the_bucket_is_full_forgives_the_strikes():
    rate, clock = limiter(per_second=10, burst=2, strikes=3)
    rate.admit(), rate.admit()
    assert [rate.admit() for _ in range(3)] == [Admission.LIMITED] * 3
    clock.now += 0.2  # full again
    assert [rate.admit() for _ in range(2)] == [Admission.ADMITTED] * 2
    assert [rate.admit() for _ in range(4)] == [Admission.LIMITED] * 3 + [Admission.EXCEEDED]


@given(per_second=st.floats(min_value=0.5, max_value=1000), burst=st.integers(min_value=1, max_value=1000))
def test_property_a_client_within_the_rate_is_never_limited(per_second, burst):
    rate, clock = limiter(per_second=per_second, burst=burst, strikes=1)
    for _ in range(200):
        assert rate.admit() is Admission.ADMITTED
        clock.now += 1.001 / per_second  # a hair under the rate: float rounding must not decide


@given(
    gaps=st.lists(st.floats(min_value=0, max_value=2), max_size=300),
    per_second=st.floats(min_value=1, max_value=100),
    burst=st.integers(min_value=1, max_value=50),
)
def test_property_never_more_than_burst_plus_rate_times_elapsed(gaps, per_second, burst):
    rate, clock = limiter(per_second=per_second, burst=burst, strikes=10**6)
    start, admitted = clock.now, 0
    for gap in gaps:
        clock.now += gap
        admitted += rate.admit() is Admission.ADMITTED
    assert admitted <= burst + (clock.now - start) * per_second + 1e-6
