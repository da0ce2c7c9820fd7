"""Signed notify requests (protocol.signing): HMAC-SHA256 over method, path, timestamp and body."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.signing import BadSignature, sign, verify

SECRET = b"notify-secret-0123456789"
NOW = 1_800_000_000


def check(signature, timestamp=str(NOW), method="POST", path="/notify/like", body=b'{"postId":1}', now=NOW, skew=300):
    verify(SECRET, method, path, timestamp, signature, body, now, skew)


def test_the_signature_is_documented_hmac_sha256_in_hex():
    body = b'{"postId":1,"userId":2}'
    expected = hmac.new(SECRET, b"POST\n/notify/post\n1800000000\n" + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, "post", "/notify/post", NOW, body) == "sha256=" + expected


def test_a_correct_signature_is_accepted_within_the_skew():
    signature = sign(SECRET, "POST", "/notify/like", NOW, b'{"postId":1}')
    check(signature)
    check(signature, now=NOW + 299)
    check(signature, now=NOW - 299)  # the caller's clock a little ahead


@pytest.mark.parametrize(
    "changed",
    [
        {"method": "PUT"},
        {"path": "/notify/post"},
        {"body": b'{"postId":2}'},
        {"timestamp": str(NOW + 1)},
    ],
)
def test_any_change_to_what_was_signed_is_refused(changed):
    signature = sign(SECRET, "POST", "/notify/like", NOW, b'{"postId":1}')
    with pytest.raises(BadSignature, match="does not match"):
        check(signature, **changed)


def test_another_secret_is_refused():
    with pytest.raises(BadSignature, match="does not match"):
        check(sign(b"another-secret", "POST", "/notify/like", NOW, b'{"postId":1}'))


@pytest.mark.parametrize("now", [NOW + 301, NOW - 301])
def test_a_timestamp_beyond_the_skew_is_refused_even_with_a_good_signature(now):
    with pytest.raises(BadSignature, match="away from the server's clock"):
        check(sign(SECRET, "POST", "/notify/like", NOW, b'{"postId":1}'), now=now)


@pytest.mark.parametrize(
    ("timestamp", "signature", "reason"),
    [
        (None, "sha256=00", "missing"),
        (str(NOW), None, "missing"),
        ("", "sha256=00", "missing"),
        ("soon", "sha256=00", "whole seconds"),
        ("1.5", "sha256=00", "whole seconds"),
        ("1e9", "sha256=00", "whole seconds"),
        (str(NOW), "00", "does not match"),
        (str(NOW), "sha256=" + "é" * 64, "does not match"),
    ],
)
def test_malformed_headers_are_refused_with_a_reason(timestamp, signature, reason):
    with pytest.raises(BadSignature, match=reason):
        check(signature, timestamp=timestamp)


@pytest.mark.parametrize(
    "spelling",
    [f"+{NOW}", f"0{NOW}", "1_800_000_000", "\u0661\u0668" + "\u0660" * 8, f"{NOW}\n", f"-{NOW}", "9" * 17],
    ids=["plus", "leading-zero", "underscores", "arabic-indic-digits", "newline", "negative", "too-long"],
)
def test_a_timestamp_in_any_spelling_but_plain_ascii_digits_is_refused(spelling):
    """int() reads each of these as a number; signed with it, the request would verify under several spellings."""
    signature = sign(SECRET, "POST", "/notify/like", NOW, b'{"postId":1}')
    with pytest.raises(BadSignature, match="plain digits"):
        check(signature, timestamp=spelling)


def test_spaces_around_the_timestamp_are_not_part_of_it():
    check(sign(SECRET, "POST", "/notify/like", NOW, b'{"postId":1}'), timestamp=f" {NOW}\t")


@given(
    method=st.sampled_from(["POST", "GET"]), path=st.text(min_size=1), body=st.binary(), offset=st.integers(-300, 300)
)
def test_property_what_is_signed_verifies(method, path, body, offset):
    signature = sign(SECRET, method, path, NOW, body)
    verify(SECRET, method, path, str(NOW), signature, body, NOW + offset, 300)
