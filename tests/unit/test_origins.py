"""The WebSocket handshake's Origin check (web.origins)."""

from __future__ import annotations

import pytest

from web.origins import allowed_origins, cors_allow_origin, loopback_hosts, origin_allowed


def test_no_origin_means_not_a_browser_and_is_let_through():
    assert origin_allowed(None, frozenset())


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "", "https://social.example.com.evil.example"])
def test_a_browser_page_is_refused_unless_its_origin_is_listed(origin):
    allowed = allowed_origins("https://social.example.com", demo=False, ws_port=8080)
    assert not origin_allowed(origin, allowed)


@pytest.mark.parametrize(
    "origin", ["https://social.example.com", "HTTPS://Social.Example.com", "https://social.example.com/"]
)
def test_listed_origins_match_case_insensitively_without_a_trailing_slash(origin):
    allowed = allowed_origins("https://social.example.com/ https://m.example.com", demo=False, ws_port=8080)
    assert origin_allowed(origin, allowed)


def test_the_port_is_part_of_the_origin():
    allowed = allowed_origins("https://social.example.com", demo=False, ws_port=8080)
    assert not origin_allowed("https://social.example.com:8443", allowed)


def test_star_allows_any_page():
    assert origin_allowed("https://anything.example", allowed_origins("*", demo=False, ws_port=8080))


def test_nothing_configured_refuses_every_page():
    assert not origin_allowed("http://localhost:8080", allowed_origins("", demo=False, ws_port=8080))


@pytest.mark.parametrize("origin", ["http://localhost:9000", "http://127.0.0.1:9000", "http://[::1]:9000"])
def test_demo_mode_allows_its_own_page(origin):
    assert origin_allowed(origin, allowed_origins("", demo=True, ws_port=9000))


@pytest.mark.parametrize("origin", ["http://localhost:9001", "http://rebound.example:9000", "https://localhost:9000"])
def test_demo_mode_allows_nothing_else(origin):
    assert not origin_allowed(origin, allowed_origins("", demo=True, ws_port=9000))


def test_loopback_hosts_are_the_loopback_names_on_the_port():
    assert loopback_hosts(8080) == {"localhost:8080", "127.0.0.1:8080", "[::1]:8080"}


def test_loopback_hosts_on_port_80_include_the_bare_names_browsers_send():
    assert {"localhost", "127.0.0.1", "[::1]", "localhost:80"} <= loopback_hosts(80)


def test_demo_mode_on_port_80_allows_the_origin_browsers_send():
    assert origin_allowed("http://localhost", allowed_origins("", demo=True, ws_port=80))


def test_cors_allow_origin_echoes_an_allowed_origin_and_answers_any_with_a_star() -> None:
    allowed = frozenset({"https://app.example"})
    assert cors_allow_origin("https://App.example/", allowed) == "https://App.example/"
    assert cors_allow_origin("https://evil.example", allowed) is None
    assert cors_allow_origin(None, allowed) is None
    assert cors_allow_origin("https://evil.example", frozenset({"*"})) == "*"
