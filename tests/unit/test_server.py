"""web.server's bookkeeping: the pending-connection caps, the log throttle, and the limits derived from settings."""

from __future__ import annotations

import resource

import pytest

from settings import load_settings
from web.server import PendingConnections, Throttle
from web.service import request_limits

SECRET = "unit-test-secret-0123456789abcdef0123"


def test_pending_connections_are_capped_in_all_and_per_address() -> None:
    pending = PendingConnections(cap=3, per_address=2)
    assert pending.admit("a") and pending.admit("a")
    assert not pending.admit("a"), "a third from one address"
    assert pending.admit("b")
    assert not pending.admit("c"), "a fourth in all"
    assert (len(pending), pending.from_address("a"), pending.from_address("c")) == (3, 2, 0)
    pending.release("a")
    assert pending.admit("c"), "a released place is free again"


def test_a_per_address_cap_of_zero_leaves_only_the_cap_in_all() -> None:
    pending = PendingConnections(cap=3, per_address=0)
    assert all(pending.admit("a") for _ in range(3))
    assert not pending.admit("a") and not pending.admit("b")


def test_a_kept_alive_connection_is_counted_again_even_over_the_cap() -> None:
    pending = PendingConnections(cap=1, per_address=1)
    assert pending.admit("a")
    pending.add("b")
    assert (len(pending), pending.from_address("b")) == (2, 1)
    pending.release("b")
    pending.release("a")
    assert (len(pending), pending.from_address("a")) == (0, 0)


def test_the_throttle_reports_once_per_interval_with_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("web.server.time.monotonic", lambda: now[0])
    throttle = Throttle(interval=1.0)
    assert throttle.due() == 1, "the first event is reported at once"
    assert [throttle.due() for _ in range(5)] == [0] * 5
    now[0] += 1.0
    assert throttle.due() == 6, "the next report counts the silent ones"
    now[0] += 0.5
    assert throttle.due() == 0


@pytest.mark.parametrize(
    ("descriptors", "per_address_setting", "pending_connections", "pending_per_address"),
    [
        (20_000, "500", 1000, 500),
        (20_000, "0", 1000, 0),
        (20_000, "250", 1000, 250),
        (1024, "250", 256, 128),
        (256, "500", 64, 32),
        (256, "0", 64, 0),
        (resource.RLIM_INFINITY, "250", 1000, 250),
    ],
)
def test_pending_connections_take_at_most_a_quarter_of_the_descriptors(
    monkeypatch: pytest.MonkeyPatch,
    descriptors: int,
    per_address_setting: str,
    pending_connections: int,
    pending_per_address: int,
) -> None:
    monkeypatch.setattr("web.service.resource.getrlimit", lambda _: (descriptors, resource.RLIM_INFINITY))
    environ = {"REALTIME_AUTH_SECRET": SECRET, "REALTIME_LIMITS_PENDING_PER_ADDRESS": per_address_setting}
    limits = request_limits(load_settings(environ=environ))
    assert (limits.pending_connections, limits.pending_per_address) == (pending_connections, pending_per_address)
    assert (limits.request_timeout, limits.keep_alive_timeout, limits.max_body_bytes) == (10, 5, 65536)
