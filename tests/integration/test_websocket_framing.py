"""The WebSocket framing layer over real sockets: what a browser library hides.

A raw TCP client (`RawSocket`, tests/helpers/wire.py) writes the HTTP upgrade
and masked frames itself, so tests control exactly which bytes go in which
write: frames in the same write as the handshake, fragmented messages with
pings between the fragments, close frames. It parses server frames too, so the
close codes and the end of the TCP connection are checked as they are on the wire.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from tests.helpers.chat import assert_service_works, history
from tests.helpers.server import ServerFactory, ServerProcess
from tests.helpers.wire import (
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    TIMEOUT,
    RawSocket,
    client_frame,
    connect_frame,
    json_frame,
)

CLOSE_GRACE_SECONDS = 2.0  # web.ws.transport: how long the server waits for an answer to its close frame


def raw(server: ServerProcess) -> RawSocket:
    return RawSocket(server.ws_port)


def assert_delivered(
    server: ServerProcess, sender: RawSocket, sender_id: int, recipient_id: int, content: str, client_msg_id: str
) -> dict[str, Any]:
    """The raw socket's message is acknowledged, pushed to the recipient and stored; returns the pushed frame."""
    sent = sender.expect("message_sent", clientMsgId=client_msg_id)
    assert sent["to"] == recipient_id
    with server.connect(recipient_id) as recipient:
        # a message sent while the recipient was offline arrives on connect
        received = recipient.expect("message", messageId=sent["messageId"])
        assert received["from"] == sender_id and received["content"] == content
        assert received["clientMsgId"] == client_msg_id
        stored = [m for m in history(recipient, sender_id) if m["messageId"] == sent["messageId"]]
        assert len(stored) == 1 and stored[0]["content"] == content, stored
    return received


# ---------------------------------------------------------------- (a) frames in the same write as the handshake


def test_connect_in_the_same_write_as_the_upgrade_request_is_answered(server: ServerProcess) -> None:
    (a_id,) = server.add_users(1)
    with raw(server) as a:
        a.handshake(after=connect_frame(server, a_id))
        connected = a.expect("connected")
        assert connected["userId"] == a_id
        a.send_json({"type": "ping"})
        a.expect("pong")
    assert_service_works(server)


@pytest.mark.parametrize("content_size", [20, 3000], ids=["within-the-handshake-buffer", "past-the-handshake-buffer"])
def test_connect_message_and_ping_in_the_same_write_as_the_upgrade_are_all_handled(
    server: ServerProcess, content_size: int
) -> None:
    a_id, b_id = server.add_users(2)
    content = ("\u20ac" + "x" * content_size)[:content_size]
    after = (
        connect_frame(server, a_id)
        + client_frame(OPCODE_PING, b"early ping")
        + json_frame({"type": "message", "to": b_id, "content": content, "clientMsgId": "same-write"})
    )
    with raw(server) as a:
        # the handshake reads through a 1 KiB buffer: the long case has frames both in it and still in the socket
        assert (len(a.request + after) > 2048) == (content_size > 1000)
        a.handshake(after=after)
        assert a.expect("connected")["userId"] == a_id
        a.expect_pong(b"early ping")
        assert_delivered(server, a, a_id, b_id, content, "same-write")


def test_connect_frame_split_between_the_upgrade_write_and_a_later_one(server: ServerProcess) -> None:
    (a_id,) = server.add_users(1)
    frame = connect_frame(server, a_id)
    for cut in (1, 2, 5, len(frame) // 2, len(frame) - 1):
        with raw(server) as a:
            a.handshake(after=frame[:cut])  # the 101 arrived: the server holds the start of the frame
            a.send(frame[cut:])
            assert a.expect("connected")["userId"] == a_id, cut


# ---------------------------------------------------------------- (b) WebSocket ping and pong


def test_a_ping_gets_a_pong_with_its_payload_before_and_after_authentication(server: ServerProcess) -> None:
    (a_id,) = server.add_users(1)
    with raw(server) as a:
        a.handshake()
        for payload in (b"before auth", b"", bytes(range(125))):
            a.send_frame(OPCODE_PING, payload)
            a.expect_pong(payload)
        a.send(connect_frame(server, a_id))
        assert a.expect("connected")["userId"] == a_id
        for payload in (b"after auth", b"", b"\xff" * 125):
            a.send_frame(OPCODE_PING, payload)
            a.expect_pong(payload)
        # several pings in one write, from a peer that reads: a pong each, in order
        # (tests/integration/test_resource_limits.py: one that does not read gets one pong, to the latest)
        a.send(b"".join(client_frame(OPCODE_PING, b"p%d" % n) for n in range(5)))
        for n in range(5):
            a.expect_pong(b"p%d" % n)
        # an unsolicited pong is ignored: no answer, the socket stays open
        a.send_frame(OPCODE_PONG, b"unsolicited")
        a.send_frame(OPCODE_PING, b"still here")
        a.expect_pong(b"still here")
        a.send_json({"type": "ping"})
        a.expect("pong")
        assert a.texts == [] and a.controls == []


# ---------------------------------------------------------------- (c) fragmented messages


def fragments_of(text: str) -> list[bytes]:
    """`text` as UTF-8 in three pieces, cut inside its first 3-byte and its first 4-byte character."""
    raw_bytes = text.encode("utf-8")
    cuts = [raw_bytes.index("\u20ac".encode()) + 1, raw_bytes.index("\U0001f600".encode()) + 2]
    return [raw_bytes[: cuts[0]], raw_bytes[cuts[0] : cuts[1]], raw_bytes[cuts[1] :]]


@pytest.mark.parametrize("one_write", [False, True], ids=["write-per-fragment", "one-write"])
def test_a_fragmented_message_with_a_ping_between_fragments_is_stored_and_delivered(
    server: ServerProcess, one_write: bool
) -> None:
    a_id, b_id = server.add_users(2)
    content = "fragmented \u20ac\u20ac\u20ac \U0001f600 " * 3
    text = json.dumps({"type": "message", "to": b_id, "content": content, "clientMsgId": "frag"}, ensure_ascii=False)
    first, second, third = fragments_of(text)
    frames = [
        client_frame(OPCODE_TEXT, first, fin=False),
        client_frame(OPCODE_PING, b"between fragments"),
        client_frame(OPCODE_CONTINUATION, second, fin=False),
        client_frame(OPCODE_CONTINUATION, third, fin=True),
    ]
    with raw(server) as a, server.connect(b_id) as b:
        assert a.connect(server, a_id)["userId"] == a_id
        if one_write:
            a.send(b"".join(frames))
            a.expect_pong(b"between fragments")
        else:
            a.send(frames[0])
            a.send(frames[1])
            a.expect_pong(b"between fragments")  # answered while the message is still incomplete
            a.send(frames[2])
            a.send(frames[3])
        sent = a.expect("message_sent", clientMsgId="frag")
        fragmented = b.expect("message", messageId=sent["messageId"])
        # the same message sent whole arrives the same way
        a.send_json({"type": "message", "to": b_id, "content": content, "clientMsgId": "whole"})
        whole_sent = a.expect("message_sent", clientMsgId="whole")
        whole = b.expect("message", messageId=whole_sent["messageId"])
        ignore = ("messageId", "createdAt", "clientMsgId")
        assert {k: v for k, v in fragmented.items() if k not in ignore} == {
            k: v for k, v in whole.items() if k not in ignore
        }
        assert fragmented["content"] == content and fragmented["from"] == a_id
        stored = {m["messageId"]: m["content"] for m in history(b, a_id)}
        assert stored == {sent["messageId"]: content, whole_sent["messageId"]: content}
    assert_service_works(server)


# ---------------------------------------------------------------- (d) the closing handshake


@pytest.mark.parametrize("authenticated", [False, True], ids=["before-auth", "after-auth"])
@pytest.mark.parametrize(
    ("payload", "answer"),
    [
        (struct.pack("!H", 1000), 1000),
        (struct.pack("!H", 1000) + "bye \u20ac".encode(), 1000),
        (b"", 1000),  # no status code: answered with a normal closure
        (struct.pack("!H", 1001), 1001),
        (struct.pack("!H", 4000), 4000),
    ],
    ids=["1000", "1000-with-reason", "empty", "1001", "4000"],
)
def test_a_close_frame_is_answered_with_its_code_then_tcp_is_closed(
    server: ServerProcess, authenticated: bool, payload: bytes, answer: int
) -> None:
    (a_id,) = server.add_users(1)
    with raw(server) as a, server.connect(a_id) as other:
        if authenticated:
            a.connect(server, a_id)
        else:
            a.handshake()
        a.send_frame(OPCODE_CLOSE, payload)
        code, _ = a.expect_close()
        assert code == answer
        # the server closes TCP at once, not when the grace period for an unanswered close ends
        a.expect_eof(timeout=CLOSE_GRACE_SECONDS * 0.75)
        assert a.texts == [] and a.controls == []
        # the user's other socket is unaffected
        other.assert_alive()
    assert_service_works(server)


@pytest.mark.parametrize(
    ("payload", "answer"),
    [
        (b"\x03", 1002),
        (struct.pack("!H", 1005), 1002),
        (struct.pack("!H", 1006), 1002),
        (struct.pack("!H", 999), 1002),
        (struct.pack("!H", 5000), 1002),
        (struct.pack("!H", 1000) + b"\xff\xfe", 1007),
    ],
    ids=["one-byte", "1005", "1006", "999", "5000", "bad-utf8-reason"],
)
def test_a_malformed_close_frame_is_answered_with_an_error_code(
    server: ServerProcess, payload: bytes, answer: int
) -> None:
    (a_id,) = server.add_users(1)
    with raw(server) as a:
        a.connect(server, a_id)
        a.send_frame(OPCODE_CLOSE, payload)
        code, _ = a.expect_close()
        assert code == answer
        # our close frame, malformed as it is, ended the handshake: the server closes TCP at once, not at the end of
        # the grace period it gives a peer to answer its own close
        a.expect_eof(timeout=CLOSE_GRACE_SECONDS * 0.75)
    assert_service_works(server)


# ---------------------------------------------------------------- (e) SIGTERM


@pytest.mark.slow
def test_sigterm_closes_unauthenticated_and_authenticated_sockets_with_1001(make_server: ServerFactory) -> None:
    server = make_server().start()
    (a_id,) = server.add_users(1)
    with raw(server) as waiting, raw(server) as authenticated:
        waiting.handshake()
        waiting.send_frame(OPCODE_PING, b"registered?")
        waiting.expect_pong(b"registered?")  # the server reads this socket: it is one of its connections
        authenticated.connect(server, a_id)
        authenticated.send_frame(OPCODE_PING, b"me too")
        authenticated.expect_pong(b"me too")

        assert server.stop() == 0

        for sock in (waiting, authenticated):
            code, _ = sock.expect_close()
            assert code == 1001
            sock.expect_eof(timeout=TIMEOUT)
        assert waiting.texts == [] and waiting.controls == []


# ---------------------------------------------------------------- framing errors over a real socket


def _reserved_bit(frame: bytes) -> bytes:
    return bytes((frame[0] | 0x40,)) + frame[1:]


def _unmasked(frame: bytes) -> bytes:
    """The same frame without its mask (and with the payload unmasked)."""
    mask, payload = frame[2:6], frame[6:]
    return bytes((frame[0], frame[1] & 0x7F)) + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


BAD_FRAMES = [
    ("reserved-bit", lambda: _reserved_bit(json_frame({"type": "ping"})), 1002),
    ("unmasked", lambda: _unmasked(json_frame({"type": "ping"})), 1002),
    ("unknown-opcode", lambda: client_frame(0x3, b"?"), 1002),
    ("continuation-without-start", lambda: client_frame(OPCODE_CONTINUATION, b"{}"), 1002),
    ("text-inside-fragmented", lambda: client_frame(OPCODE_TEXT, b"{", fin=False) + json_frame({"type": "ping"}), 1002),
    ("ping-over-125", lambda: client_frame(OPCODE_PING, b"p" * 126), 1002),
    ("fragmented-ping", lambda: client_frame(OPCODE_PING, b"p", fin=False), 1002),
    (
        "invalid-utf8-across-fragments",
        lambda: client_frame(OPCODE_TEXT, b'"\xe2\x82', fin=False) + client_frame(OPCODE_CONTINUATION, b'("'),
        1007,
    ),
    (
        "fragments-over-the-limit",
        lambda: client_frame(OPCODE_TEXT, b" " * 40_000, fin=False) + client_frame(OPCODE_CONTINUATION, b" " * 30_000),
        1009,
    ),
]


@pytest.mark.parametrize(("make", "close_code"), [c[1:] for c in BAD_FRAMES], ids=[c[0] for c in BAD_FRAMES])
def test_a_framing_error_closes_only_that_socket_with_its_code_and_tcp_at_the_peers_close(
    server: ServerProcess, make: Any, close_code: int
) -> None:
    (a_id,) = server.add_users(1)
    with raw(server) as a, server.connect(a_id) as other:
        a.connect(server, a_id)
        a.send(make())
        code, _ = a.expect_close()
        assert code == close_code
        assert a.texts == [] and a.controls == []  # no pong, no error frame: the bad bytes were not acted on
        # frames sent after the server failed the connection are skipped, whatever their size; our close behind
        # them ends the connection at once, not at the end of the grace period
        a.send(
            client_frame(OPCODE_TEXT, b" " * 100_000) + json_frame({"type": "ping"}) + client_frame(OPCODE_PING, b"")
        )
        a.send_frame(OPCODE_CLOSE, struct.pack("!H", close_code))
        a.expect_eof(timeout=CLOSE_GRACE_SECONDS / 4)
        assert a.texts == [] and a.controls == []
        other.assert_alive()
    assert_service_works(server)


def test_a_message_read_before_a_framing_error_is_still_stored(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    with raw(server) as a, server.connect(b_id) as b:
        a.connect(server, a_id)
        a.send_json({"type": "message", "to": b_id, "content": "before the bad frame", "clientMsgId": "first"})
        a.expect("message_sent", clientMsgId="first")
        a.send(_reserved_bit(json_frame({"type": "ping"})))
        assert a.expect_close()[0] == 1002
        assert b.expect("message", clientMsgId="first")["content"] == "before the bad frame"


def test_a_message_in_the_same_write_as_a_later_framing_error_is_still_stored(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    with raw(server) as a, server.connect(b_id) as b:
        a.connect(server, a_id)
        good = json_frame({"type": "message", "to": b_id, "content": "before the bad frame", "clientMsgId": "first"})
        a.send(good + _reserved_bit(json_frame({"type": "ping"})))
        assert a.expect_close()[0] == 1002
        # the message may or may not be acknowledged before the close frame, but it is handled like the one above
        assert b.expect("message", timeout=1.5, clientMsgId="first")["content"] == "before the bad frame"
