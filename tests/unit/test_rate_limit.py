"""The per-user send limits: token buckets with strikes, for frames, messages and content bytes, on a clock the
tests move."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.rate_limit import SWEEP_AT_LEAST, Admission, RateLimiter, SendLimiter, SendLimiters, SendRates


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


def test_a_frame_may_cost_several_tokens_and_waits_until_the_bucket_holds_them():
    rate, clock = limiter(per_second=100, burst=250, strikes=3)
    assert rate.admit(200) is Admission.ADMITTED
    assert rate.admit(100) is Admission.LIMITED  # 50 left
    clock.now += 0.5  # 100 tokens
    assert rate.admit(100) is Admission.ADMITTED


def test_a_bucket_without_strikes_refuses_but_never_says_go():
    clock = Clock()
    rate = RateLimiter(1, 1, None, clock)
    rate.admit()
    assert {rate.admit() for _ in range(10_000)} == {Admission.LIMITED}


def send_rates(**overrides: float) -> SendRates:
    rates = dict(
        frames_per_second=50,
        frame_burst=500,
        messages_per_second=10,
        message_burst=100,
        content_bytes_per_second=8192,
        content_bytes_burst=131072,
        strikes=100,
    )
    return SendRates(**{**rates, **overrides})


def send_limiter(**overrides: float) -> tuple[SendLimiter, Clock]:
    clock = Clock()
    return SendLimiter(send_rates(**overrides), clock), clock


def test_a_script_sending_messages_as_fast_as_it_can_is_limited_then_told_to_go():
    """The default limits: 100 messages at once, then each refused, and after 100 refusals 4429."""
    send, _ = send_limiter()
    verdicts = []
    for _ in range(300):
        assert send.admit_frame() is Admission.ADMITTED  # frames run out later: at 500
        verdicts.append(send.admit_message("spam"))
    assert verdicts[:201] == [Admission.ADMITTED] * 100 + [Admission.LIMITED] * 100 + [Admission.EXCEEDED]


def test_a_person_chatting_and_reading_is_never_limited():
    """A bench user's closed-loop burst of 20, then an hour at 5 messages a second, each answered by a
    message_read, a history page every 2 s and a ping every 25 s: all admitted."""
    send, clock = send_limiter()
    for n in range(20):
        assert send.admit_frame() is Admission.ADMITTED and send.admit_message(f"hello {n}") is Admission.ADMITTED
    for tick in range(5 * 3600):
        clock.now += 0.2
        assert send.admit_frame() is Admission.ADMITTED
        assert send.admit_message("x" * 200) is Admission.ADMITTED
        assert send.admit_frame() is Admission.ADMITTED  # message_read
        if tick % 10 == 0:
            assert send.admit_frame() is Admission.ADMITTED  # history
        if tick % 125 == 0:
            assert send.admit_frame() is Admission.ADMITTED  # ping


def test_content_is_counted_in_utf8_bytes_and_over_the_budget_is_refused_without_strikes():
    send, clock = send_limiter(content_bytes_burst=16_000, content_bytes_per_second=1000, message_burst=1000)
    largest = "😀" * 4000  # 16,000 bytes
    assert send.admit_message(largest) is Admission.ADMITTED
    assert {send.admit_message("é") for _ in range(150)} == {Admission.LIMITED}  # 2 bytes each, none left
    clock.now += 0.0025  # 2.5 bytes
    assert send.admit_message("é") is Admission.ADMITTED
    clock.now += 16  # full again: the largest message fits once more
    assert send.admit_message(largest) is Admission.ADMITTED


def test_the_largest_message_needs_a_full_content_bucket_and_passes_once_it_is():
    send, clock = send_limiter()
    ascii_paste = "a" * 4000
    admitted = [send.admit_message(ascii_paste) for _ in range(40)]
    assert admitted == [Admission.ADMITTED] * 32 + [Admission.LIMITED] * 8  # 32 x 4,000 bytes fit in 128 KiB
    clock.now += 4000 / 8192
    assert send.admit_message(ascii_paste) is Admission.ADMITTED


@given(
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), max_size=300),
    sizes=st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=300),
)
def test_property_stored_messages_and_bytes_never_exceed_burst_plus_rate_times_elapsed(gaps, sizes):
    send, clock = send_limiter()
    start, messages, stored_bytes = clock.now, 0, 0
    for gap, size in zip(gaps, sizes * 300):
        clock.now += gap
        if send.admit_frame() is Admission.ADMITTED and send.admit_message("b" * size) is Admission.ADMITTED:
            messages += 1
            stored_bytes += size
    elapsed = clock.now - start
    assert messages <= 100 + 10 * elapsed + 1e-6
    assert stored_bytes <= 131072 + 8192 * elapsed + 1e-6


def test_a_user_who_reconnects_gets_back_the_limiter_it_spent():
    clock = Clock()
    limiters = SendLimiters(send_rates(), clock=clock)
    spent = limiters.of(7)
    for _ in range(100):
        spent.admit_message("x")
    limiters.release(7, spent)  # the user's last socket closed: its actor stopped
    del spent
    again = limiters.of(7)
    assert again.admit_message("x") is Admission.LIMITED
    assert limiters.of(8).admit_message("x") is Admission.ADMITTED


def test_a_users_running_actors_share_one_limiter():
    limiters = SendLimiters(send_rates(), clock=Clock())
    first = limiters.of(7)
    assert limiters.of(7) is first  # a second actor started while the first stops


def test_a_rested_limiter_is_not_kept_and_spent_ones_are_swept_once_rested():
    clock = Clock()
    limiters = SendLimiters(send_rates(), clock=clock)
    limiters.release(1, limiters.of(1))  # never used: rested
    assert len(limiters) == 0
    for user_id in range(2, 2 + SWEEP_AT_LEAST):
        limiter = limiters.of(user_id)
        limiter.admit_message("x")  # the message bucket refills in 0.1 s
        if user_id == 2:
            clock.now += 0.2
        limiters.release(user_id, limiter)
    assert len(limiters) == SWEEP_AT_LEAST - 1  # the sweep at the 1,024th dropped user 2, rested by then


def test_past_the_cap_with_everyone_spending_the_oldest_half_goes():
    clock = Clock()
    limiters = SendLimiters(send_rates(), max_users=SWEEP_AT_LEAST, clock=clock)
    for user_id in range(SWEEP_AT_LEAST):
        limiter = limiters.of(user_id)
        limiter.admit_message("x")
        limiters.release(user_id, limiter)
    assert len(limiters) == SWEEP_AT_LEAST // 2
    assert limiters.of(SWEEP_AT_LEAST - 1).admit_message("x") is Admission.ADMITTED  # 99 of 100 left
    assert limiters.of(0).admit_message("x") is Admission.ADMITTED and len(limiters) < SWEEP_AT_LEAST // 2
