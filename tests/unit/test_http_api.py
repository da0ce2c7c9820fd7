"""The notify API's caller checks, through Flask's test client.

Over real sockets every local address is loopback, so the "without a secret
only loopback callers are answered" rule is tested here, with the caller's
address set in the WSGI environ. The app is built without a node: every case
below is answered before a request would reach the actors (a refused caller,
a preflight, or a body that fails validation).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from settings import load_settings
from web.http_api import create_http_app, is_loopback

REMOTE = "192.0.2.10"  # TEST-NET-1: never loopback
NOTIFY_PATHS = ["/notify/post", "/notify/comment", "/notify/like"]
BAD_BODY = {"userId": 3}  # no postId: a 400 that is answered before the node is touched
AUTH_SECRET = "unit-test-secret-0123456789abcdef"
NOTIFY_SECRET = "notify-unit-test-secret-0123456789"


def _app(tmp_path: Path, **env: str) -> Flask:
    empty = tmp_path / "empty.ini"
    empty.write_text("", encoding="utf-8")
    settings = load_settings(empty, environ={"REALTIME_AUTH_SECRET": AUTH_SECRET, **env})
    return create_http_app(settings, node=None)  # type: ignore[arg-type]


@pytest.fixture
def open_app(tmp_path: Path) -> FlaskClient:
    """No notify secret: loopback callers only."""
    return _app(tmp_path).test_client()


@pytest.fixture
def secret_app(tmp_path: Path) -> FlaskClient:
    return _app(tmp_path, REALTIME_NOTIFY_SECRET=NOTIFY_SECRET).test_client()


def _post(client: FlaskClient, path: str, remote: str, body: Any = BAD_BODY, **headers: str):
    return client.post(path, json=body, headers=headers, environ_base={"REMOTE_ADDR": remote})


def _assert_failure(response, status: int, origin: str | None = None) -> dict[str, Any]:
    """A refusal with the contract's JSON body and the CORS headers (by default no page origin is allowed)."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers.get("Access-Control-Allow-Origin") == origin
    assert "X-Notify-Secret" in response.headers["Access-Control-Allow-Headers"]
    body = json.loads(response.get_data())
    assert body["success"] is False and isinstance(body["error"], str) and body["error"]
    return body


# ---------------------------------------------------------------- no secret: loopback only


@pytest.mark.parametrize("path", NOTIFY_PATHS)
@pytest.mark.parametrize("remote", [REMOTE, "10.0.0.7", "2001:db8::1", "::ffff:192.0.2.10"])
def test_without_secret_a_remote_caller_gets_403_with_cors(open_app: FlaskClient, path: str, remote: str) -> None:
    _assert_failure(_post(open_app, path, remote), 403)


def test_without_secret_a_remote_caller_gets_403_whatever_the_method(open_app: FlaskClient) -> None:
    response = open_app.get("/notify/post", environ_base={"REMOTE_ADDR": REMOTE})
    _assert_failure(response, 403)


def test_without_secret_a_remote_caller_gets_403_even_with_some_secret_header(open_app: FlaskClient) -> None:
    _assert_failure(_post(open_app, "/notify/like", REMOTE, **{"X-Notify-Secret": ""}), 403)
    _assert_failure(_post(open_app, "/notify/like", REMOTE, **{"X-Notify-Secret": "guess"}), 403)


@pytest.mark.parametrize("remote", ["127.0.0.1", "127.8.9.10", "::1"])
def test_without_secret_a_loopback_caller_is_answered(open_app: FlaskClient, remote: str) -> None:
    body = _assert_failure(_post(open_app, "/notify/post", remote), 400)
    assert "postId" in body["error"]


def test_without_secret_an_ipv4_mapped_loopback_caller_is_answered(open_app: FlaskClient) -> None:
    response = _post(open_app, "/notify/post", "::ffff:127.0.0.1")
    assert response.status_code == 400, response.get_data(as_text=True)


def test_is_loopback_refuses_what_is_not_an_address() -> None:
    assert not is_loopback(None)
    assert not is_loopback("")
    assert not is_loopback("localhost")
    assert not is_loopback("127.0.0.1.evil")
    assert is_loopback("127.0.0.1") and is_loopback("::1")


@pytest.mark.parametrize("remote", [REMOTE, "127.0.0.1"])
def test_preflight_is_answered_204_to_anyone_without_auth(open_app: FlaskClient, remote: str) -> None:
    response = open_app.options(
        "/notify/post",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        environ_base={"REMOTE_ADDR": remote},
    )
    assert response.status_code == 204
    assert response.get_data() == b""
    assert "Access-Control-Allow-Origin" not in response.headers  # no page origin is listed by default
    assert "Origin" in response.vary
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "X-Notify-Secret" in response.headers["Access-Control-Allow-Headers"]
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]


# ---------------------------------------------------------------- with a secret


@pytest.mark.parametrize("path", NOTIFY_PATHS)
@pytest.mark.parametrize("remote", [REMOTE, "127.0.0.1"])
def test_with_secret_the_right_header_lets_any_caller_past_the_check(
    secret_app: FlaskClient, path: str, remote: str
) -> None:
    body = _assert_failure(_post(secret_app, path, remote, **{"X-Notify-Secret": NOTIFY_SECRET}), 400)
    assert "postId" in body["error"]


@pytest.mark.parametrize("remote", [REMOTE, "127.0.0.1", "::1"])
@pytest.mark.parametrize(
    "offered",
    [None, "", "wrong", NOTIFY_SECRET + " ", NOTIFY_SECRET.upper(), NOTIFY_SECRET[:-1], NOTIFY_SECRET + "\u00e9"],
)
def test_with_secret_a_missing_or_wrong_header_gets_401(
    secret_app: FlaskClient, remote: str, offered: str | None
) -> None:
    headers = {} if offered is None else {"X-Notify-Secret": offered}
    _assert_failure(_post(secret_app, "/notify/like", remote, **headers), 401)


def test_with_secret_the_preflight_needs_no_header(secret_app: FlaskClient) -> None:
    response = secret_app.options("/notify/comment", environ_base={"REMOTE_ADDR": REMOTE})
    assert response.status_code == 204


# ---------------------------------------------------------------- CORS origin list and body limit


def test_origin_list_echoes_an_allowed_origin_on_a_refusal(tmp_path: Path) -> None:
    client = _app(tmp_path, REALTIME_NOTIFY_CORS_ORIGINS="https://a.example https://b.example").test_client()
    response = client.post(
        "/notify/post", json=BAD_BODY, headers={"Origin": "https://b.example"}, environ_base={"REMOTE_ADDR": REMOTE}
    )
    assert response.status_code == 403
    assert response.headers["Access-Control-Allow-Origin"] == "https://b.example"
    assert "Origin" in response.vary
    response = client.post(
        "/notify/post", json=BAD_BODY, headers={"Origin": "https://c.example"}, environ_base={"REMOTE_ADDR": REMOTE}
    )
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers


def test_body_over_the_configured_limit_is_413(tmp_path: Path) -> None:
    client = _app(tmp_path, REALTIME_LIMITS_MAX_BODY_BYTES="100").test_client()
    at_limit = json.dumps({"userId": 3, "pad": "x" * 100}).encode()[:100]
    over = b"x" * 101
    response = client.post("/notify/post", data=over, content_type="application/json")
    body = _assert_failure(response, 413)
    assert body["success"] is False
    response = client.post("/notify/post", data=at_limit, content_type="application/json")
    assert response.status_code == 400  # within the limit: parsed (and refused as not JSON)


# ---------------------------------------------------------------- body types and browser pages on this machine


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "text/plain;charset=UTF-8", "application/octet-stream", "text/json", "application/xml"],
)
@pytest.mark.parametrize("path", NOTIFY_PATHS)
def test_a_body_that_is_neither_json_nor_a_form_is_415(open_app: FlaskClient, path: str, content_type: str | None):
    """text/plain (or no type) is what a page may post to another origin without a preflight: never parsed."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = open_app.post(
        path, data=json.dumps({"postId": 1, "userId": 2}), headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    )
    body = _assert_failure(response, 415)
    assert "application/json" in body["error"] and "application/x-www-form-urlencoded" in body["error"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON", "application/x-www-form-urlencoded"],
)
def test_json_and_form_bodies_pass_the_type_check(open_app: FlaskClient, content_type: str) -> None:
    data = "userId=3" if "form" in content_type else json.dumps(BAD_BODY)
    response = open_app.post(
        "/notify/post", data=data, headers={"Content-Type": content_type}, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    )
    assert "postId" in _assert_failure(response, 400)["error"]  # parsed: refused for the missing field only


def test_the_secret_is_checked_before_the_body_type(secret_app: FlaskClient) -> None:
    response = secret_app.post(
        "/notify/like", data="x", content_type="text/plain", environ_base={"REMOTE_ADDR": REMOTE}
    )
    _assert_failure(response, 401)


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:8081", "null", "https://evil.example"])
def test_without_secret_a_local_page_of_an_unlisted_origin_gets_403(open_app: FlaskClient, origin: str) -> None:
    """Loopback is no proof of a trusted caller when the caller is a browser on this machine."""
    body = _assert_failure(_post(open_app, "/notify/post", "127.0.0.1", Origin=origin), 403)
    assert "Origin" in body["error"]


def test_without_secret_a_listed_page_origin_is_answered_and_may_read_the_answer(tmp_path: Path) -> None:
    client = _app(tmp_path, REALTIME_NOTIFY_CORS_ORIGINS="https://App.example/").test_client()
    response = _post(client, "/notify/post", "127.0.0.1", Origin="https://app.example")
    assert "postId" in _assert_failure(response, 400, origin="https://app.example")["error"]


def test_cors_star_stays_possible_when_configured(tmp_path: Path) -> None:
    client = _app(tmp_path, REALTIME_NOTIFY_CORS_ORIGINS="*").test_client()
    response = _post(client, "/notify/post", "127.0.0.1", Origin="https://any.example")
    assert "postId" in _assert_failure(response, 400, origin="*")["error"]


def test_demo_mode_lets_its_own_page_call_the_notify_api(tmp_path: Path) -> None:
    client = _app(
        tmp_path, REALTIME_SERVER_DEMO="true", REALTIME_DATABASE_PATH=str(tmp_path / "db.sqlite3")
    ).test_client()
    for origin in ("http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080"):
        response = _post(client, "/notify/like", "127.0.0.1", Origin=origin)
        assert "postId" in _assert_failure(response, 400, origin=origin)["error"]
    _assert_failure(_post(client, "/notify/like", "127.0.0.1", Origin="http://127.0.0.1:9999"), 403)
