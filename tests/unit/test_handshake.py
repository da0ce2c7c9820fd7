"""`web.ws.handshake.check_upgrade` and `accept_key`: the upgrade's decision, from a WSGI environ alone."""

from __future__ import annotations

import pytest

from web.ws.handshake import HandshakePolicy, accept_key, check_upgrade

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example
POLICY = HandshakePolicy(
    max_message_bytes=1024, allowed_origins=frozenset({"https://app.example"}), connections_per_address=3
)


def upgrade(**headers: str) -> dict:
    environ = {"HTTP_SEC_WEBSOCKET_VERSION": "13", "HTTP_SEC_WEBSOCKET_KEY": KEY}
    environ.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    return environ


def test_a_valid_upgrade_proceeds_and_is_answered_with_rfc_6455s_accept_key() -> None:
    assert check_upgrade(upgrade(), POLICY, 0) is None
    assert check_upgrade(upgrade(origin="https://APP.example/"), POLICY, 2) is None
    assert accept_key(upgrade()) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_page_of_an_origin_not_allowed_gets_403_and_a_log_line() -> None:
    refusal = check_upgrade(upgrade(origin="https://evil.example"), POLICY, 0)
    assert refusal is not None and refusal.status == "403 Forbidden"
    assert refusal.logged and "evil.example" in refusal.logged


def test_an_address_at_its_cap_gets_429_and_a_log_line() -> None:
    refusal = check_upgrade(upgrade(), POLICY, 3)
    assert refusal is not None and refusal.status == "429 Too Many Requests" and refusal.logged
    uncapped = HandshakePolicy(max_message_bytes=1024, allowed_origins=frozenset(), connections_per_address=0)
    assert check_upgrade(upgrade(), uncapped, 10_000) is None


def test_an_unsupported_version_gets_400_naming_the_supported_ones() -> None:
    refusal = check_upgrade(upgrade(sec_websocket_version="12"), POLICY, 0)
    assert refusal is not None and refusal.status == "400 Bad Request" and refusal.logged is None
    assert dict(refusal.headers)["Sec-WebSocket-Version"].startswith("13")


@pytest.mark.parametrize("key", ["", "not base64!", "c2hvcnQ=", KEY + "AAAA"])
def test_a_key_that_is_not_16_bytes_in_base64_gets_400(key: str) -> None:
    refusal = check_upgrade(upgrade(sec_websocket_key=key), POLICY, 0)
    assert refusal is not None and refusal.status == "400 Bad Request" and refusal.body == b"Invalid Sec-WebSocket-Key"
