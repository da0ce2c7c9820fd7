"""The Python notify client's pure parts agree with the service's own: tokens, signatures, backoff, arguments."""

from __future__ import annotations

import pytest
from realtime_notify import NotifyClient, mint_token, sign

from protocol import signing
from protocol.tokens import InvalidToken, verify_token

AUTH_SECRET = "unit-test-auth-secret-of-32-bytes-or-more"


def test_minted_token_is_accepted_by_the_service_until_it_expires() -> None:
    token = mint_token(AUTH_SECRET, 42, ttl=60)
    assert verify_token(AUTH_SECRET, token) == 42
    with pytest.raises(InvalidToken):
        verify_token(AUTH_SECRET[::-1], token)
    with pytest.raises(InvalidToken):
        verify_token(AUTH_SECRET, mint_token(AUTH_SECRET, 42, ttl=60, now=1_000_000))


@pytest.mark.parametrize("user_id", [0, -1, True, "42", 4.0])
def test_mint_token_refuses_what_is_not_a_user_id(user_id: object) -> None:
    with pytest.raises(ValueError):
        mint_token(AUTH_SECRET, user_id)  # type: ignore[arg-type]


def test_signature_is_the_one_the_service_checks() -> None:
    body = '{"postId":1,"userId":2}'.encode()
    mine = sign(b"k", "POST", "/notify/like", 1_800_000_000, body)
    assert mine == signing.sign(b"k", "post", "/notify/like", 1_800_000_000, body)
    signing.verify(b"k", "POST", "/notify/like", "1800000000", mine, body, now=1_800_000_001, max_skew=300)


def test_backoff_grows_is_capped_and_jittered_in_the_upper_half() -> None:
    client = NotifyClient("http://127.0.0.1:1", backoff=0.2, max_backoff=1.0)
    for attempt, ceiling in enumerate([0.2, 0.4, 0.8, 1.0, 1.0]):
        delays = {client._delay(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1


@pytest.mark.parametrize(
    "arguments",
    [
        {"base_url": "127.0.0.1:8081"},
        {"base_url": "ftp://127.0.0.1:8081"},
        {"base_url": "http://127.0.0.1:8081/?x=1"},
        {"base_url": "http://127.0.0.1:8081", "secret": "a", "signing_secret": "b"},
        {"base_url": "http://127.0.0.1:8081", "retries": -1},
        {"base_url": "http://127.0.0.1:8081", "timeout": 0},
    ],
)
def test_client_refuses_settings_it_cannot_honour(arguments: dict) -> None:
    with pytest.raises(ValueError):
        NotifyClient(**arguments)


@pytest.mark.parametrize("key", ["", "k" * 129])
def test_idempotency_key_must_fit_the_contract(key: str) -> None:
    with pytest.raises(ValueError):
        NotifyClient("http://127.0.0.1:1").like(1, 2, idempotency_key=key)
