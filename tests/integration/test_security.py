"""Hardening over real sockets: who may connect, secrets kept out of logs, token expiry and revocation,
signed notify requests, per-user rate and socket limits, the per-address cap, and dead peers.

Servers with other settings than the defaults are started per module or per
test; every limit is set small here so that it is reached quickly, and each
test checks that the refusal costs nobody else anything.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from email.message import Message
from typing import Any, Iterator

import pytest

from protocol.signing import sign
from tests.helpers.chat import assert_message_goes_through, assert_service_works, history, unique
from tests.helpers.client import Client
from tests.helpers.notifications import assert_failure, assert_ok, post_json, post_of
from tests.helpers.server import BACKENDS, DatabaseFactory, ServerFactory, ServerProcess, wait_until
from tests.helpers.wire import OPCODE_PING, OPCODE_PONG, RawSocket, connect_frame

ALLOWED_ORIGIN = "https://social.example.com"
NOTIFY_SECRET = "notify-secret-for-security-tests-5a2e"
TIMEOUT = 10.0


def handshake_status(server: ServerProcess, origin: str | None = None) -> tuple[int, bytes]:
    """Send a WebSocket upgrade (with `Origin` if given); the response's status code and body."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.ws_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    )
    if origin is not None:
        head += f"Origin: {origin}\r\n"
    with socket.create_connection(("127.0.0.1", server.ws_port), timeout=TIMEOUT) as sock:
        sock.sendall((head + "\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(4096)
            assert chunk, f"connection closed before a response: {response!r}"
            response += chunk
        status = int(response.split(b" ", 2)[1])
        if status == 101:
            return status, b""
        sock.settimeout(2)
        try:
            while chunk := sock.recv(4096):
                response += chunk
        except TimeoutError:
            pass
        return status, response.split(b"\r\n\r\n", 1)[1]


def start(make_server: ServerFactory, **settings: str) -> ServerProcess:
    return make_server({f"REALTIME_{key.upper()}": value for key, value in settings.items()}).start()


@pytest.fixture(scope="module", params=BACKENDS)
def limited(
    request: pytest.FixtureRequest, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server with tiny per-user limits: a burst of 10 frames, one more every 10 s, 5 strikes; 3 sockets."""
    env = {
        "REALTIME_LIMITS_FRAMES_PER_SECOND": "0.1",
        "REALTIME_LIMITS_FRAME_BURST": "10",
        "REALTIME_LIMITS_RATE_LIMIT_STRIKES": "5",
        "REALTIME_LIMITS_SOCKETS_PER_USER": "3",
    }
    process = ServerProcess(tmp_path_factory.mktemp(f"limited-{request.param}"), new_database(request.param), env)
    process.start()
    yield process
    process.stop()
    process.close_storage()


def healthz(server: ServerProcess) -> dict[str, Any]:
    status, body = server.health()
    assert status == 200, body
    return body


def counts(server: ServerProcess) -> tuple[int, int]:
    """(users, sockets) connected, from /healthz."""
    health = healthz(server)
    return health["users"], health["sockets"]


# ---------------------------------------------------------------- who may connect: Origin


def test_a_page_from_an_origin_not_allowed_is_refused_with_403_before_any_frame(make_server: ServerFactory) -> None:
    server = start(make_server, server_allowed_origins=f"{ALLOWED_ORIGIN} https://m.example.com")
    for origin in (
        "https://evil.example",
        "null",
        "https://social.example.com.evil.example",
        "http://social.example.com",
    ):
        status, body = handshake_status(server, origin)
        assert status == 403, (origin, status, body)
        assert b"allowed_origins" in body, body
    assert handshake_status(server, ALLOWED_ORIGIN)[0] == 101
    assert handshake_status(server, "https://M.example.com")[0] == 101
    assert handshake_status(server, None)[0] == 101  # not a browser: the token decides
    (user_id,) = server.add_users(1)
    with server.client(origin=ALLOWED_ORIGIN) as page:
        assert page.connect(user_id, server.token(user_id))["userId"] == user_id
    assert_service_works(server)


def test_by_default_no_web_page_may_open_a_socket_but_other_clients_may(server: ServerProcess) -> None:
    assert handshake_status(server, f"http://127.0.0.1:{server.ws_port}")[0] == 403
    assert handshake_status(server, "https://anywhere.example")[0] == 403
    assert handshake_status(server, None)[0] == 101


def test_demo_mode_allows_its_own_page_and_nothing_else(make_server: ServerFactory) -> None:
    server = make_server().start("--demo")
    for own in (f"http://localhost:{server.ws_port}", f"http://127.0.0.1:{server.ws_port}"):
        assert handshake_status(server, own)[0] == 101, own
    for other in ("https://evil.example", f"http://rebound.example:{server.ws_port}", "http://localhost:1"):
        assert handshake_status(server, other)[0] == 403, other


# ---------------------------------------------------------------- the demo endpoints and page


def http_get(port: int, path: str, host: str | None = None) -> tuple[int, Message, bytes]:
    """GET on 127.0.0.1:`port`, with `Host: host` if given (what a DNS-rebinding page's browser sends)."""
    headers = {} if host is None else {"Host": host}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers), timeout=TIMEOUT
        ) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory, new_database: DatabaseFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("demo"), new_database("sqlite"))
    process.start("--demo")
    yield process
    process.stop()


DEMO_PATHS = ["/demo/token?userId=1", "/demo/users", "/demo/config"]


@pytest.mark.parametrize("path", DEMO_PATHS)
def test_demo_endpoints_refuse_a_host_that_is_not_a_loopback_name(demo_server: ServerProcess, path: str) -> None:
    """DNS rebinding: a page of rebound.example, its name now resolving to 127.0.0.1, calls from this machine."""
    port = demo_server.ws_port
    for host in (f"rebound.example:{port}", f"127.0.0.1.nip.io:{port}", f"localhost.:{port}", "localhost:1", "x"):
        status, _, body = http_get(port, path, host)
        assert status == 403, (host, status)
        assert b"token" not in body and b"alice" not in body, body
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"LocalHost:{port}", None):
        assert http_get(port, path, host)[0] == 200, host


def test_a_demo_token_is_not_cached(demo_server: ServerProcess) -> None:
    status, headers, body = http_get(demo_server.ws_port, "/demo/token?userId=1")
    assert status == 200 and json.loads(body)["token"]
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/", "/static/demo.js", "/demo/users"])
def test_the_demo_page_and_its_files_carry_a_strict_content_security_policy(
    demo_server: ServerProcess, path: str
) -> None:
    status, headers, _ = http_get(demo_server.ws_port, path)
    assert status == 200
    policy = dict(directive.strip().split(" ", 1) for directive in headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
    # its own WebSocket and the notify API its buttons call, on this machine only
    ws_port, http_port = demo_server.ws_port, demo_server.http_port
    assert set(policy["connect-src"].split()) == {
        "'self'",
        *(f"ws://{host}:{ws_port}" for host in ("127.0.0.1", "localhost")),
        *(f"http://{host}:{http_port}" for host in ("127.0.0.1", "localhost")),
    }
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


# ---------------------------------------------------------------- secrets never logged


def test_tokens_and_the_notify_secret_never_reach_the_log(make_server: ServerFactory) -> None:
    server = start(make_server, log_level="debug", notify_secret=NOTIFY_SECRET)
    a_id, b_id, ghost = *server.add_users(2), 10**12
    tokens = [server.token(a_id), server.token(b_id), server.token(ghost), server.token(a_id, ttl=-60)]
    with server.client("/?token=" + tokens[0]) as a, server.connect(b_id) as b:
        a.send({"type": "connect", "userId": a_id})
        a.expect("connected")
        a.send({"type": "connect", "token": tokens[3]})  # expired: refused, logged at most as a refusal
        a.expect_error("unauthorized")
        assert_message_goes_through(a, a_id, b, b_id)
    with server.client() as g:
        g.send({"type": "connect", "userId": ghost, "token": tokens[2]})
        g.expect_error("unauthorized")
    post_id = post_of(server, a_id)
    like = {"postId": post_id, "userId": b_id}
    assert_failure(post_json(server, "/notify/like", like, {"X-Notify-Secret": "wrong"}), 401)
    reply = post_json(server, "/notify/like", {"postId": post_id, "userId": b_id}, {"X-Notify-Secret": NOTIFY_SECRET})
    assert_ok(reply, recipients=1, online=0)
    assert server.stop() == 0
    log = server.log_path.read_text(errors="replace")
    assert f"user {a_id} connected" in log, "the server should have logged connects at debug level"
    for secret in (*tokens, NOTIFY_SECRET, NOTIFY_SECRET[:16]):
        assert secret not in log, f"found a secret in the log: {secret[:12]}..."


# ---------------------------------------------------------------- token expiry and revocation


def test_a_socket_outlives_its_token_and_a_fresh_connect_renews_it(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    expires_at = int(time.time()) + 2
    short = server.token(a_id, ttl=expires_at - time.time())
    with server.client() as a, server.connect(b_id) as b:
        assert a.connect(a_id, short)["userId"] == a_id
        time.sleep(max(0.0, expires_at + 1.1 - time.time()))  # the event here is the clock passing the expiry
        a.assert_alive()  # the token expired; the socket stays open and authenticated
        assert_message_goes_through(a, a_id, b, b_id)
        assert_message_goes_through(b, b_id, a, a_id)
        a.send({"type": "connect", "userId": a_id, "token": short})  # renewing with the expired one is refused
        assert a.expect_error("unauthorized")["ref"]["type"] == "connect"
        a.assert_alive()
        a.send({"type": "connect", "userId": a_id, "token": server.token(a_id)})
        assert a.expect("connected")["userId"] == a_id
        assert_message_goes_through(a, a_id, b, b_id)
    with server.client() as late:  # a new socket cannot use the expired token
        late.send({"type": "connect", "userId": a_id, "token": short})
        late.expect_error("unauthorized")
        assert late.expect_close() == 4401


def test_a_user_deleted_from_users_is_refused_at_the_next_connect(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    token = server.token(a_id)
    with server.client() as a:
        a.connect(a_id, token)
    server.storage.engine.transaction(lambda s: s.execute("DELETE FROM users WHERE id = %s", (a_id,)), write=True)
    with server.client() as again:
        again.send({"type": "connect", "userId": a_id, "token": token})
        assert again.expect_error("unauthorized")["ref"]["type"] == "connect"
        assert again.expect_close() == 4401
    with server.connect(b_id) as b:
        b.assert_alive()


# ---------------------------------------------------------------- signed notify requests


def signed_like(
    server: ServerProcess,
    body: dict[str, Any],
    timestamp: int | None = None,
    tamper: bytes | None = None,
    secret: str = NOTIFY_SECRET,
) -> Any:
    raw = json.dumps(body).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    signature = sign(secret.encode(), "POST", "/notify/like", stamp, raw)
    headers = {"X-Notify-Timestamp": str(stamp), "X-Notify-Signature": signature}
    return post_json(server, "/notify/like", tamper if tamper is not None else raw, headers)


def test_notify_accepts_an_hmac_signed_request_and_refuses_altered_stale_or_unsigned_ones(
    make_server: ServerFactory,
) -> None:
    server = start(make_server, notify_secret=NOTIFY_SECRET, notify_signature_max_skew="60")
    owner, liker, other_liker = server.add_users(3)
    post_id = post_of(server, owner)
    body = {"postId": post_id, "userId": liker}
    with server.connect(owner) as page:
        assert_ok(signed_like(server, body), recipients=1, online=1)
        assert page.expect("notification")["postId"] == post_id
        refusals = {
            "altered body": signed_like(server, body, tamper=json.dumps({**body, "userId": liker + 1000}).encode()),
            "a space added": signed_like(server, body, tamper=json.dumps(body).encode() + b" "),
            "stale": signed_like(server, body, timestamp=int(time.time()) - 120),
            "from the future": signed_like(server, body, timestamp=int(time.time()) + 120),
            "other secret": signed_like(server, body, secret="not-the-secret"),
            "unsigned": post_json(server, "/notify/like", body),
        }
        for case, reply in refusals.items():
            assert reply.status == 401, (case, reply.status, reply.raw)
            assert_failure(reply, 401)
        page.assert_no_frame("notification")
        # the shared-secret header still works (for another like: a repeated one is stored and pushed once)
        other = {"postId": post_id, "userId": other_liker}
        assert_ok(post_json(server, "/notify/like", other, {"X-Notify-Secret": NOTIFY_SECRET}), recipients=1, online=1)
        assert page.expect("notification")["actorId"] == other_liker


# ---------------------------------------------------------------- the per-user frame rate


def test_frames_beyond_the_rate_are_refused_and_a_client_that_keeps_on_is_closed_with_4429(
    limited: ServerProcess,
) -> None:
    a_id, b_id = limited.add_users(2)
    with limited.connect(a_id) as a, limited.connect(b_id) as b:
        for _ in range(10):  # the burst (the connect frame itself is not counted)
            a.send({"type": "ping"})
        for _ in range(10):
            a.expect("pong")
        refused_ids = [unique("over") for _ in range(6)]
        for client_msg_id in refused_ids[:5]:
            a.message(b_id, "over the limit", client_msg_id)
            error = a.expect_error("rate_limited")
            assert error["ref"] == {"type": "message", "clientMsgId": client_msg_id}, error
            a.assert_no_frame("message_sent", within=0.05, clientMsgId=client_msg_id)
        assert a.close_code is None  # five strikes allowed; the sixth refusal closes
        a.message(b_id, "still over", refused_ids[5])
        a.expect_error("rate_limited")
        assert a.expect_close() == 4429
        # nothing refused was stored or pushed, and b (another user) is not limited at all
        b.assert_no_frame("message", within=0.2)
        assert [m for m in history(b, a_id) if m["content"] in ("over the limit", "still over")] == []
    assert_service_works(limited)


def test_the_limit_is_per_user_across_sockets_and_never_applies_to_the_servers_pushes(
    limited: ServerProcess,
) -> None:
    a_id, *senders = limited.add_users(4)
    with ExitStack() as stack:
        a1, a2 = stack.enter_context(limited.connect(a_id)), stack.enter_context(limited.connect(a_id))
        others = [stack.enter_context(limited.connect(sender)) for sender in senders]
        for client in (a1, a2) * 5:  # ten frames from two sockets: the user's burst is spent
            client.send({"type": "ping"})
        for client in (a1, a2):
            for _ in range(5):
                client.expect("pong")
        a2.send({"type": "ping"})
        assert a2.expect_error("rate_limited")["ref"] == {"type": "ping"}
        # three others send a more than twice its burst: everything reaches both of a's sockets,
        # and every sender hears that its messages arrived
        sent: list[tuple[Client, int]] = []
        for n in range(8):
            for sender_id, sender in zip(senders, others):
                sender.message(a_id, f"push {sender_id} {n}", f"push-{sender_id}-{n}")
                sent.append((sender, sender.expect("message_sent", clientMsgId=f"push-{sender_id}-{n}")["messageId"]))
        for client in (a1, a2):
            for _, message_id in sent:
                client.expect("message", messageId=message_id)
        for sender, message_id in sent:
            sender.expect("message_delivered", messageId=message_id)
        assert a1.close_code is None and a2.close_code is None


# ---------------------------------------------------------------- sockets per user


def test_a_socket_beyond_the_users_cap_is_refused_with_a_reason_and_a_freed_place_is_reusable(
    limited: ServerProcess,
) -> None:
    a_id, b_id = limited.add_users(2)
    with ExitStack() as stack:
        sockets = [stack.enter_context(limited.connect(a_id)) for _ in range(3)]
        with limited.client() as fourth:
            fourth.send({"type": "connect", "userId": a_id, "token": limited.token(a_id)})
            error = fourth.expect_error("rate_limited")
            assert error["ref"] == {"type": "connect"} and "3" in error["message"], error
            assert fourth.expect_close() == 1008
            assert "too many sockets" in (fourth.close_reason or "")
        with limited.connect(b_id) as b:  # other users are not affected
            assert_message_goes_through(b, b_id, sockets[0], a_id)
        sockets[2].close()

        def fourth_connects() -> bool:
            with limited.client() as retry:
                retry.send({"type": "connect", "userId": a_id, "token": limited.token(a_id)})
                try:
                    retry.expect("connected", timeout=5)
                except AssertionError:  # refused: the closed socket is not detached yet
                    return False
                return True

        wait_until(fourth_connects, "a new socket after one of the three closed", TIMEOUT)
        for client in sockets[:2]:
            client.assert_alive()


# ---------------------------------------------------------------- connections per client address


def test_connections_from_one_address_beyond_the_cap_get_429_and_a_freed_place_is_reusable(
    make_server: ServerFactory,
) -> None:
    server = start(make_server, limits_connections_per_address="3")
    a_id, b_id = server.add_users(2)
    with ExitStack() as stack:
        a = stack.enter_context(server.connect(a_id))
        b = stack.enter_context(server.connect(b_id))
        idle = stack.enter_context(RawSocket(server.ws_port))
        idle.handshake()  # not even authenticated yet: it still holds a place
        status, body = handshake_status(server)
        assert status == 429 and b"connections_per_address" in body, (status, body)
        assert_message_goes_through(a, a_id, b, b_id)  # those connected keep working
        idle.close()
        wait_until(lambda: handshake_status(server)[0] == 101, "a place freed by a closed connection", TIMEOUT)


# ---------------------------------------------------------------- dead peers


def test_a_peer_that_vanishes_without_a_close_frame_is_dropped_and_its_actor_freed(
    make_server: ServerFactory,
) -> None:
    server = start(make_server, server_ping_interval="0.5")
    a_id, b_id = server.add_users(2)
    with server.connect(b_id) as b, RawSocket(server.ws_port) as ghost:
        ghost.handshake()
        ghost.send(connect_frame(server, a_id))
        ghost.expect("connected")
        assert counts(server) == (2, 2)
        # from here on the ghost reads nothing and answers no ping: as if its network had gone
        wait_until(lambda: counts(server) == (1, 1), "the drop of the silent socket", TIMEOUT)
        # nothing is lost: a message for the vanished user waits in the database for its next socket
        b.message(a_id, "while you were gone", "gone-1")
        sent = b.expect("message_sent", clientMsgId="gone-1")
        b.assert_no_frame("message_delivered", within=0.3)
    with server.connect(a_id) as back:
        assert back.expect("message", messageId=sent["messageId"])["content"] == "while you were gone"


def test_a_peer_that_answers_pings_stays_connected(make_server: ServerFactory) -> None:
    server = start(make_server, server_ping_interval="0.3")
    (a_id,) = server.add_users(1)
    with RawSocket(server.ws_port) as peer, server.connect(a_id) as library_client:
        peer.handshake()
        peer.send(connect_frame(server, a_id))
        peer.expect("connected")
        for _ in range(5):  # five pings, each answered as a browser would
            opcode, payload = peer.read_control()
            assert opcode == OPCODE_PING
            peer.send_frame(OPCODE_PONG, payload)
        peer.send_json({"type": "ping"})
        peer.expect("pong")
        library_client.assert_alive()  # the websockets library answers pings by itself
        assert healthz(server)["sockets"] == 2
