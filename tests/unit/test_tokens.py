"""JWT (HS256) tokens: `mint_token` / `verify_token`, built with PyJWT for the odd cases."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest

from protocol.frames import MAX_ID
from protocol.tokens import InvalidToken, mint_token, verify_token

SECRET = "unit-test-secret-0123456789abcdef-0123456789abcdef-0123456789abcdef"
OTHER_SECRET = "another-secret-0123456789abcdef-0123456789abcdef-0123456789abcdef"


def signed(claims: dict, secret: str = SECRET, algorithm: str = "HS256", headers: dict | None = None) -> str:
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


def in_an_hour() -> int:
    return int(time.time()) + 3600


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned(claims: dict) -> str:
    """A token with `alg: none` and an empty signature, as an attacker would write it."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims).encode())
    return f"{header}.{payload}."


def assert_invalid(token, secret: str = SECRET) -> None:
    with pytest.raises(InvalidToken):
        verify_token(secret, token)


# ------------------------------------------------------------ accepted


def test_round_trip():
    assert verify_token(SECRET, mint_token(SECRET, 42)) == 42


def test_round_trip_largest_id():
    assert verify_token(SECRET, mint_token(SECRET, MAX_ID)) == MAX_ID


def test_minted_claims():
    claims = jwt.decode(mint_token(SECRET, 42, ttl_seconds=60, now=1_000_000), options={"verify_signature": False})
    assert claims["sub"] == "42"
    assert claims["exp"] == 1_000_060
    assert jwt.get_unverified_header(mint_token(SECRET, 42))["alg"] == "HS256"


def test_sub_as_string():
    assert verify_token(SECRET, signed({"sub": "7", "exp": in_an_hour()})) == 7


def test_sub_as_integer():
    assert verify_token(SECRET, signed({"sub": 7, "exp": in_an_hour()})) == 7


def test_extra_claims_are_ignored():
    assert verify_token(SECRET, signed({"sub": "7", "exp": in_an_hour(), "name": "x", "iat": 1})) == 7


# ------------------------------------------------------------ rejected


def test_a_token_with_a_lone_surrogate_is_invalid_not_a_crash():
    with pytest.raises(InvalidToken, match="not valid text"):
        verify_token(SECRET, mint_token(SECRET, 7) + "\ud800")


def test_missing_exp():
    assert_invalid(signed({"sub": "7"}))


def test_missing_sub():
    assert_invalid(signed({"exp": in_an_hour()}))


def test_expired():
    assert_invalid(mint_token(SECRET, 42, ttl_seconds=-3600))


def test_expired_as_built_by_pyjwt():
    assert_invalid(signed({"sub": "7", "exp": int(time.time()) - 120}))


def test_minted_in_the_past_is_expired():
    assert_invalid(mint_token(SECRET, 42, ttl_seconds=60, now=time.time() - 3600))


def test_non_numeric_exp():
    assert_invalid(signed({"sub": "7", "exp": "tomorrow"}))


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_a_time_claim_written_as_a_string_of_digits_is_invalid(claim):
    """PyJWT reads "1800000000" with int(); RFC 7519 says a NumericDate is a JSON number."""
    claims = {"sub": "7", "exp": in_an_hour(), "nbf": int(time.time()) - 60, "iat": int(time.time()) - 60}
    claims[claim] = str(claims[claim])
    with pytest.raises(InvalidToken, match=f"'{claim}' must be a number"):
        verify_token(SECRET, signed(claims))


def test_a_time_claim_that_is_a_boolean_is_invalid():
    assert_invalid(signed({"sub": "7", "exp": in_an_hour(), "iat": True}))


def test_a_fractional_exp_is_a_number_and_accepted():
    assert verify_token(SECRET, signed({"sub": "7", "exp": time.time() + 3600.5})) == 7


def test_wrong_secret():
    assert_invalid(mint_token(OTHER_SECRET, 42))


def test_verified_with_an_empty_secret():
    assert_invalid(mint_token(SECRET, 42), secret="")


def test_tampered_payload():
    header, _, signature = mint_token(SECRET, 42).split(".")
    forged_payload = b64(json.dumps({"sub": "1", "exp": in_an_hour()}).encode())
    assert_invalid(f"{header}.{forged_payload}.{signature}")


def test_alg_none():
    assert_invalid(unsigned({"sub": "7", "exp": in_an_hour()}))


def test_alg_none_built_by_pyjwt():
    assert_invalid(jwt.encode({"sub": "7", "exp": in_an_hour()}, None, algorithm="none"))


def test_hs512():
    assert_invalid(signed({"sub": "7", "exp": in_an_hour()}, algorithm="HS512"))


def test_hs384():
    assert_invalid(signed({"sub": "7", "exp": in_an_hour()}, algorithm="HS384"))


@pytest.mark.parametrize(
    "sub",
    ["abc", "", " 7", "7 ", "7.0", "-7", "0", 0, -7, 7.0, 7.5, True, False, None, [7], {"id": 7}]
    + [MAX_ID + 1, str(MAX_ID + 1)],
    ids=repr,
)
def test_bad_sub(sub):
    assert_invalid(signed({"sub": sub, "exp": in_an_hour()}))


def test_sub_of_5000_digits():
    assert_invalid(signed({"sub": "1" * 5000, "exp": in_an_hour()}))


@pytest.mark.parametrize("token", ["", None], ids=repr)
def test_empty_or_missing_token(token):
    assert_invalid(token)


@pytest.mark.parametrize("token", ["abc", "a.b.c", "...", "not a token at all", "eyJhbGciOiJIUzI1NiJ9.e30."])
def test_garbage(token):
    assert_invalid(token)


def test_payload_that_is_not_an_object():
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(b"[1, 2, 3]")
    signature = b64(hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert_invalid(f"{header}.{payload}.{signature}")
