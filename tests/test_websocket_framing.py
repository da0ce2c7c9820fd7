"""The WebSocket framing layer over real sockets: what a browser library hides.

A raw TCP client (`RawSocket`) writes the HTTP upgrade and masked frames
itself, so tests control exactly which bytes go in which write: frames in the
same write as the handshake, fragmented messages with pings between the
fragments, close frames. Server frames are parsed here too, so the close
codes and the end of the TCP connection are checked as they are on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import time
from typing import Any

import pytest

from tests.conftest import ServerFactory
from tests.server import ServerProcess
from tests.test_bad_input import assert_service_works, history

OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA
TIMEOUT = 10.0
HANDSHAKE_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_GRACE_SECONDS = 2.0  # web.ws.transport: how long the server waits for an answer to its close frame


def client_frame(opcode: int, payload: bytes | str, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One masked client frame (a random mask unless given)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    mask = os.urandom(4) if mask is None else mask
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes((first, 0x80 | size))
    elif size < 1 << 16:
        header = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def json_frame(frame: dict[str, Any]) -> bytes:
    return client_frame(OPCODE_TEXT, json.dumps(frame))


def connect_frame(server: ServerProcess, user_id: int) -> bytes:
    return json_frame({"type": "connect", "userId": user_id, "token": server.token(user_id)})


class RawSocket:
    """A WebSocket client on a plain TCP socket: every byte it writes is the test's choice."""

    def __init__(self, port: int, path: str = "/", receive_buffer: int | None = None):
        """`receive_buffer`: SO_RCVBUF, set before connecting so that the window it offers is that small too."""
        self.sock = socket.socket()
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.buffer = b""
        self.texts: list[dict[str, Any]] = []  # text frames read but not yet taken by expect()
        self.controls: list[tuple[int, bytes]] = []  # control frames read but not yet taken by read_control()
        self.eof = False

    # ------------------------------------------------------------ writing

    def handshake(self, after: bytes = b"") -> None:
        """Send the upgrade request and `after` in ONE write, then read the 101 response."""
        self.sock.sendall(self.request + after)
        deadline = time.monotonic() + TIMEOUT
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), head
        headers = {
            name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
        }
        expected = base64.b64encode(hashlib.sha1(self.key + HANDSHAKE_GUID).digest()).decode()
        assert headers.get("sec-websocket-accept") == expected, headers

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes | str, fin: bool = True) -> None:
        self.sock.sendall(client_frame(opcode, payload, fin))

    def send_json(self, frame: dict[str, Any]) -> None:
        self.sock.sendall(json_frame(frame))

    def connect(self, server: ServerProcess, user_id: int) -> dict[str, Any]:
        self.handshake()
        self.send(connect_frame(server, user_id))
        return self.expect("connected", userId=user_id)

    # ------------------------------------------------------------ reading

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no more bytes from the server in time; unread: {self.texts} {self.controls}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(
                f"no more bytes from the server in time; unread: {self.texts} {self.controls}"
            ) from None
        if not data:
            self.eof = True
            raise EOFError("the server closed the TCP connection")
        self.buffer += data

    def _take(self, count: int, deadline: float) -> bytes:
        while len(self.buffer) < count:
            self._fill(deadline)
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_frame(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        """The next frame from the server as (opcode, payload); server frames are unmasked and unfragmented here."""
        deadline = time.monotonic() + timeout
        first, second = self._take(2, deadline)
        assert first & 0x70 == 0, f"reserved bits set by the server: {first:#x}"
        assert first & 0x80, "the server fragments no frame"
        assert not second & 0x80, "server frames must not be masked"
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self._take(2, deadline), "big")
        elif length == 127:
            length = int.from_bytes(self._take(8, deadline), "big")
        return first & 0x0F, self._take(length, deadline)

    def _next(self, keep: list, take: Any, deadline: float) -> Any:
        """Read frames (sorting them into `texts` and `controls`) until `take(keep)` finds one."""
        while True:
            found = take(keep)
            if found is not None:
                return found
            opcode, payload = self.read_frame(max(0.0, deadline - time.monotonic()))
            if opcode == OPCODE_TEXT:
                self.texts.append(json.loads(payload))
            else:
                assert opcode in (OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG), f"unexpected opcode {opcode}"
                self.controls.append((opcode, payload))

    def read_control(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        """The next control frame; text frames read on the way are kept for expect()."""
        return self._next(self.controls, lambda kept: kept.pop(0) if kept else None, time.monotonic() + timeout)

    def expect_pong(self, payload: bytes, timeout: float = TIMEOUT) -> None:
        opcode, received = self.read_control(timeout)
        assert (opcode, received) == (OPCODE_PONG, payload)

    def expect_close(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """The server's close frame, read past any text frames: (code, reason)."""
        opcode, payload = self.read_control(timeout)
        assert opcode == OPCODE_CLOSE, (opcode, payload)
        assert len(payload) >= 2, payload
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8")

    def expect_eof(self, timeout: float) -> None:
        """The server closes TCP within `timeout`, sending nothing more."""
        deadline = time.monotonic() + timeout
        assert self.buffer == b"", f"bytes after the close frame: {self.buffer!r}"
        try:
            self._fill(deadline)
        except EOFError:
            return
        raise AssertionError(f"bytes after the close frame: {self.buffer!r}")

    def expect(self, frame_type: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The first text frame of this type (and fields); control frames read on the way are kept."""

        def take(texts: list[dict[str, Any]]) -> dict[str, Any] | None:
            for index, frame in enumerate(texts):
                if frame.get("type") == frame_type and all(frame.get(k) == v for k, v in fields.items()):
                    return texts.pop(index)
            return None

        return self._next(self.texts, take, time.monotonic() + timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        # several pings in one write, from a peer that reads: a pong each, in order (tests/test_resource_limits.py:
        # one that does not read gets one pong, to the latest)
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
