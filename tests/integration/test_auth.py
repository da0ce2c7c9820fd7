"""Authentication over real sockets: the first frame, tokens, the auth timeout, re-`connect`.

Every refusal is `error` `unauthorized` followed by close 4401; afterwards the
refused user can still connect properly and the service keeps working for
other users.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Any, Callable
from urllib.parse import quote

import jwt
import pytest

from tests.helpers.chat import assert_message_goes_through, assert_service_works, padded_message
from tests.helpers.client import Client
from tests.helpers.server import SECRET, ServerProcess

MAX_FRAME = 65536
# the HS512 case signs with the service's own (short for SHA-512) secret on purpose
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def claims(sub: Any, ttl: float = 3600, **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "exp": int(time.time() + ttl), **extra}


def assert_unauthorized_then_closed(client: Client, ref_type: str | None = None) -> dict[str, Any]:
    error = client.expect("error")
    assert error["code"] == "unauthorized", error
    if ref_type is not None:
        assert error.get("ref", {}).get("type") == ref_type, error
    assert client.expect_close() == 4401
    assert [f for f in client.received if f.get("type") == "connected"] == []
    return error


def assert_can_still_connect(server: ServerProcess, user_id: int) -> None:
    with server.connect(user_id) as again:
        assert again.connected["userId"] == user_id
        again.assert_alive()


# ---------------------------------------------------------------- the first frame


FIRST_FRAMES: list[tuple[str, Callable[[int], dict[str, Any] | str], str | None]] = [
    ("ping", lambda uid: {"type": "ping"}, "ping"),
    ("message", lambda uid: {"type": "message", "to": uid, "content": "hi", "clientMsgId": "first"}, "message"),
    ("history", lambda uid: {"type": "history", "with": uid}, "history"),
    ("message_read", lambda uid: {"type": "message_read", "messageId": 1}, "message_read"),
    ("unknown-type", lambda uid: {"type": "hello", "userId": uid}, None),
    ("not-json", lambda uid: "connect please", None),
    ("truncated-json", lambda uid: '{"type": "connect", "userId": %d' % uid, None),
    ("array", lambda uid: '[{"type": "connect"}]', None),
    ("no-type", lambda uid: {"userId": uid}, None),
    ("type-number", lambda uid: {"type": 1, "userId": uid}, None),
    ("connect-without-token", lambda uid: {"type": "connect", "userId": uid}, "connect"),
    ("connect-token-null", lambda uid: {"type": "connect", "userId": uid, "token": None}, "connect"),
    ("connect-token-number", lambda uid: {"type": "connect", "userId": uid, "token": 12345}, "connect"),
    ("connect-token-empty", lambda uid: {"type": "connect", "userId": uid, "token": ""}, "connect"),
    ("connect-userId-bool", lambda uid: {"type": "connect", "userId": True, "token": "x"}, "connect"),
]


@pytest.mark.parametrize(("frame", "ref_type"), [c[1:] for c in FIRST_FRAMES], ids=[c[0] for c in FIRST_FRAMES])
def test_first_frame_other_than_a_valid_connect_is_unauthorized(
    server: ServerProcess, frame: Callable[[int], dict[str, Any] | str], ref_type: str | None
) -> None:
    a_id, b_id = server.add_users(2)
    with server.connect(b_id) as b, server.client() as a:
        a.send(frame(b_id))
        assert_unauthorized_then_closed(a, ref_type)
        # nothing was sent on the unauthenticated socket's behalf
        b.assert_alive()
        assert [f for f in b.received if f.get("type") == "message"] == []
    assert_can_still_connect(server, a_id)
    assert_service_works(server)


def test_binary_or_oversize_first_frame_closes_the_socket(server: ServerProcess) -> None:
    (a_id,) = server.add_users(1)
    with server.client() as a:
        a.send(b'{"type": "connect"}')
        assert a.expect_close() == 1003
    with server.client(compression=None) as a:
        a.send(padded_message(a_id, MAX_FRAME + 1, "first"))
        assert a.expect_close() == 1009
    assert_can_still_connect(server, a_id)
    assert_service_works(server)


# ---------------------------------------------------------------- tokens

BAD_TOKENS: list[tuple[str, Callable[[ServerProcess, int], str]]] = [
    ("bad-signature", lambda s, uid: jwt.encode(claims(str(uid)), "another-secret-0123456789abcdef0123", "HS256")),
    ("tampered-payload", lambda s, uid: _tamper(s.token(uid), uid)),
    ("expired", lambda s, uid: s.token(uid, ttl=-60)),
    ("without-exp", lambda s, uid: jwt.encode({"sub": str(uid)}, SECRET, algorithm="HS256")),
    ("without-sub", lambda s, uid: jwt.encode({"exp": int(time.time() + 3600)}, SECRET, algorithm="HS256")),
    ("sub-not-a-number", lambda s, uid: jwt.encode(claims("alice"), SECRET, algorithm="HS256")),
    ("sub-zero", lambda s, uid: jwt.encode(claims("0"), SECRET, algorithm="HS256")),
    ("sub-negative", lambda s, uid: jwt.encode(claims(-uid), SECRET, algorithm="HS256")),
    ("sub-float", lambda s, uid: jwt.encode(claims(uid + 0.5), SECRET, algorithm="HS256")),
    ("alg-none", lambda s, uid: jwt.encode(claims(str(uid)), None, algorithm="none")),
    ("alg-hs512", lambda s, uid: jwt.encode(claims(str(uid)), SECRET, algorithm="HS512")),
    ("not-a-jwt", lambda s, uid: "not.a.jwt"),
    ("garbage", lambda s, uid: "\u00fc" * 50),
]


def _tamper(token: str, user_id: int) -> str:
    """The token's signature over another user's claims."""
    header, _, signature = token.split(".")
    other = jwt.encode(claims(str(user_id + 1)), "irrelevant-secret-0123456789abcdef", "HS256").split(".")[1]
    return f"{header}.{other}.{signature}"


@pytest.mark.parametrize("make_token", [c[1] for c in BAD_TOKENS], ids=[c[0] for c in BAD_TOKENS])
def test_bad_token_is_unauthorized(server: ServerProcess, make_token: Callable[[ServerProcess, int], str]) -> None:
    (a_id,) = server.add_users(1)
    with server.client() as a:
        a.send({"type": "connect", "userId": a_id, "token": make_token(server, a_id)})
        assert_unauthorized_then_closed(a, "connect")
    # the same bad token as the query parameter
    with server.client("/?token=" + quote(make_token(server, a_id), safe="")) as a:
        a.send({"type": "connect", "userId": a_id})
        assert_unauthorized_then_closed(a, "connect")
    assert_can_still_connect(server, a_id)
    assert_service_works(server)


def test_user_id_different_from_the_token_subject_is_unauthorized(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    with server.connect(b_id) as b:
        with server.client() as a:
            a.send({"type": "connect", "userId": b_id, "token": server.token(a_id)})
            assert_unauthorized_then_closed(a, "connect")
        with server.client("/?token=" + server.token(a_id)) as a:
            a.send({"type": "connect", "userId": b_id})
            assert_unauthorized_then_closed(a, "connect")
        # b received nothing meant for an impostor, and still works
        b.assert_alive()
        assert [f for f in b.received if f.get("type") not in ("pong",)] == []
    assert_can_still_connect(server, a_id)
    assert_service_works(server)


def test_token_for_a_user_not_in_the_users_table_is_unauthorized(server: ServerProcess) -> None:
    (a_id,) = server.add_users(1)
    ghost = a_id + 20_000_000
    with server.client() as g:
        g.send({"type": "connect", "userId": ghost, "token": server.token(ghost)})
        reason = f"user {ghost} is not in the platform's users table"
        assert assert_unauthorized_then_closed(g, "connect")["message"] == reason  # a reason a page can show
        assert g.close_reason == reason
    assert any(reason in line and "INFO" in line.upper() for line in server.log_path.read_text().splitlines())
    with server.client("/?token=" + server.token(ghost)) as g:
        g.send({"type": "connect", "userId": ghost})
        assert_unauthorized_then_closed(g, "connect")
    assert_service_works(server)


def test_token_as_query_parameter_with_connect_carrying_only_user_id(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    for path in ("/", "/ws"):
        with server.client(f"{path}?token={server.token(a_id)}") as a, server.connect(b_id) as b:
            a.send({"type": "connect", "userId": a_id})
            connected = a.expect("connected")
            assert connected["userId"] == a_id
            a.assert_alive()
            assert_message_goes_through(a, a_id, b, b_id)
            assert_message_goes_through(b, b_id, a, a_id)


def test_token_in_the_frame_wins_over_a_bad_query_token(server: ServerProcess) -> None:
    (a_id,) = server.add_users(1)
    with server.client("/?token=garbage") as a:
        a.send({"type": "connect", "userId": a_id, "token": server.token(a_id)})
        assert a.expect("connected")["userId"] == a_id
        a.assert_alive()


def test_integer_sub_claim_is_accepted(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    token = jwt.encode(claims(a_id), SECRET, algorithm="HS256")
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == a_id
    with server.client() as a, server.connect(b_id) as b:
        a.send({"type": "connect", "userId": a_id, "token": token})
        assert a.expect("connected")["userId"] == a_id
        assert_message_goes_through(a, a_id, b, b_id)


# ---------------------------------------------------------------- a second connect


def test_second_connect_on_an_authenticated_socket(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    with server.connect(a_id) as a, server.connect(b_id) as b:
        # valid again: connected again
        a.send({"type": "connect", "userId": a_id, "token": server.token(a_id)})
        assert a.expect("connected")["userId"] == a_id
        a.send({"type": "connect", "token": server.token(a_id)})
        assert a.expect("connected")["userId"] == a_id
        # bad tokens, another user's token, another userId: refused, socket stays open and still a's
        refusals = [
            {"type": "connect", "userId": a_id, "token": server.token(a_id, ttl=-60)},
            {
                "type": "connect",
                "userId": a_id,
                "token": jwt.encode(claims(str(a_id)), "wrong-secret-0123456789abcdef0123"),
            },
            {"type": "connect", "userId": a_id, "token": "not.a.jwt"},
            {"type": "connect", "userId": a_id},
            {"type": "connect", "userId": b_id, "token": server.token(b_id)},
            {"type": "connect", "userId": b_id, "token": server.token(a_id)},
            {"type": "connect", "userId": "nobody", "token": server.token(a_id)},
        ]
        for frame in refusals:
            a.send(frame)
            error = a.expect("error")
            assert error["code"] == "unauthorized", (frame, error)
            assert error["ref"]["type"] == "connect", error
            a.assert_alive()
        assert a.close_code is None
        assert [f for f in a.received if f.get("type") == "connected"] == []
        # still authenticated as a: messages go out from a, and come in for a
        assert_message_goes_through(a, a_id, b, b_id)
        assert_message_goes_through(b, b_id, a, a_id)
        assert [f for f in b.received if f.get("type") == "message"] == []
    assert_service_works(server)


# ---------------------------------------------------------------- the auth timeout


def test_auth_timeout_closes_only_sockets_that_never_connected(make_server: Callable[..., ServerProcess]) -> None:
    server = make_server({"REALTIME_AUTH_TIMEOUT": "1"}).start()
    a_id, b_id = server.add_users(2)
    started = time.monotonic()
    with ExitStack() as stack:
        silent, pinging, stalled = (stack.enter_context(server.client()) for _ in range(3))
        a = stack.enter_context(server.connect(a_id))
        b = stack.enter_context(server.connect(b_id))
        # WebSocket-level pings are not a connect
        assert pinging.connection.ping().wait(5)
        # a frame begun but never finished is not one either: a 100-byte masked text frame, 10 bytes sent
        stalled.connection.socket.sendall(bytes([0x81, 0x80 | 100]) + b"mask" + b"0123456789")
        for client in (silent, pinging, stalled):
            assert client.expect_close(timeout=5) == 4408
        elapsed = time.monotonic() - started
        assert 0.8 <= elapsed < 5, elapsed
        assert silent.received == [] and pinging.received == [] and stalled.received == []
        # sockets that connected in time outlive the timeout
        while time.monotonic() - started < 1.6:
            a.assert_no_frame("error", within=0.2)
        assert a.close_code is None and b.close_code is None
        a.assert_alive()
        b.assert_alive()
        assert_message_goes_through(a, a_id, b, b_id)
        # a new socket gets its own full timeout, and can connect within it
        with server.client() as fresh:
            fresh.connect(a_id, server.token(a_id))
            fresh.assert_alive()


def test_first_frame_with_a_lone_surrogate_type_is_unauthorized(server: ServerProcess) -> None:
    with server.client() as a:
        a.send('{"type": "connec\\ud800t"}')
        assert_unauthorized_then_closed(a)
