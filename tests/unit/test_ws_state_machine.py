"""`web.ws.codec.ServerStateMachine` fed bytes, with a recording writer and listener: no socket, no timer.

Every turn of the close handshake, the keep-alive's ping bookkeeping, the read budget while closing and the
close code of each framing error, as the connection drives them.
"""

from __future__ import annotations

import struct

import pytest

from protocol.frames import CloseCode
from web.ws.codec import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    READ_WHILE_CLOSING_BYTES,
    ServerStateMachine,
)

MAX_MESSAGE_BYTES = 1024


def masked(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """A short client frame, masked with the all-zero key (which leaves the payload as it is)."""
    assert len(payload) < 126
    return bytes(((0x80 if fin else 0) | opcode, 0x80 | len(payload))) + bytes(4) + payload


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return masked(OPCODE_CLOSE, struct.pack("!H", code) + reason)


class RecordingWriter:
    """Records what the machine sends; like the transport, sends nothing more once a close frame is queued."""

    id = 7
    peer = "192.0.2.1"

    def __init__(self) -> None:
        self.closing = False
        self.controls: list[tuple[int, bytes]] = []
        self.closes: list[tuple[int, str]] = []

    def send_control(self, opcode: int, payload: bytes) -> None:
        if not self.closing:
            self.controls.append((opcode, payload))

    def close(self, code: int, reason: str = "") -> None:
        if not self.closing:
            self.closing = True
            self.closes.append((code, reason))


class RecordingListener:
    def __init__(self) -> None:
        self.messages: list[str | bytes] = []

    def on_message(self, message: str | bytes) -> None:
        self.messages.append(message)


class Machine:
    """A state machine with its recording writer and listener; `admitted` frames pass the rate limit."""

    def __init__(self, admitted: int = 1 << 30):
        self.writer = RecordingWriter()
        self.listener = RecordingListener()
        self._admitted = admitted
        self.machine = ServerStateMachine(self.writer, self.listener, MAX_MESSAGE_BYTES, admit_frame=self._admit)

    def _admit(self) -> bool:
        self._admitted -= 1
        return self._admitted >= 0


@pytest.fixture
def m() -> Machine:
    return Machine()


# ---------------------------------------------------------------- open connection


def test_messages_reach_the_listener_in_order_and_pings_are_answered(m: Machine) -> None:
    m.machine.receive(
        masked(OPCODE_TEXT, b"one") + masked(OPCODE_PING, b"p1") + masked(OPCODE_BINARY, b"\x00\x01")
        + masked(OPCODE_TEXT, b"tw", fin=False) + masked(OPCODE_CONTINUATION, b"o")
    )  # fmt: skip
    assert m.listener.messages == ["one", b"\x00\x01", "two"]
    assert m.writer.controls == [(OPCODE_PONG, b"p1")]
    assert not m.writer.closes and not m.machine.over and m.machine.reading


def test_a_frame_split_across_reads_is_one_message(m: Machine) -> None:
    frame = masked(OPCODE_TEXT, b"hello")
    for byte in frame:
        m.machine.receive(bytes((byte,)))
    assert m.listener.messages == ["hello"]


# ---------------------------------------------------------------- the peer closes


def test_the_peers_close_is_answered_with_its_code_and_ends_the_connection(m: Machine) -> None:
    m.machine.receive(masked(OPCODE_TEXT, b"before") + close_frame(4000, b"bye") + masked(OPCODE_TEXT, b"after"))
    assert m.listener.messages == ["before"]
    assert m.writer.closes == [(4000, "")]
    assert m.machine.over


def test_a_close_without_a_code_is_answered_with_1000(m: Machine) -> None:
    m.machine.receive(masked(OPCODE_CLOSE))
    assert m.writer.closes == [(CloseCode.NORMAL_CLOSURE, "")]
    assert m.machine.over


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"\x03", CloseCode.PROTOCOL_ERROR),  # a one-byte payload
        (struct.pack("!H", CloseCode.NO_STATUS_RECEIVED), CloseCode.PROTOCOL_ERROR),  # a code never on the wire
        (struct.pack("!H", 999), CloseCode.PROTOCOL_ERROR),
        (struct.pack("!H", CloseCode.NORMAL_CLOSURE) + b"\xff", CloseCode.INVALID_PAYLOAD),  # a reason not UTF-8
    ],
)
def test_a_malformed_close_is_answered_with_the_error_it_is_and_ends_the_connection(
    m: Machine, payload: bytes, code: int
) -> None:
    m.machine.receive(masked(OPCODE_CLOSE, payload))
    assert [close_code for close_code, _ in m.writer.closes] == [code]
    assert m.machine.over


# ---------------------------------------------------------------- the server closes


def test_once_the_server_closes_only_the_peers_close_counts_and_it_is_not_answered_again(m: Machine) -> None:
    m.writer.close(CloseCode.GOING_AWAY, "server shutting down")
    m.machine.receive(masked(OPCODE_TEXT, b"late") + masked(OPCODE_PING, b"p"))
    assert not m.listener.messages and not m.writer.controls and not m.machine.over
    m.machine.receive(close_frame(CloseCode.NORMAL_CLOSURE))
    assert m.writer.closes == [(CloseCode.GOING_AWAY, "server shutting down")]
    assert m.machine.over


def test_while_closing_at_most_the_read_budget_is_read(m: Machine) -> None:
    m.writer.close(CloseCode.GOING_AWAY)
    m.machine.receive(bytes(READ_WHILE_CLOSING_BYTES))
    assert m.machine.reading
    m.machine.receive(b"\x00")
    assert not m.machine.reading and not m.machine.over


def test_fail_closes_with_the_code_and_then_only_the_peers_close_is_decoded(m: Machine) -> None:
    m.machine.fail(CloseCode.INTERNAL_ERROR, "internal error")
    m.machine.receive(masked(OPCODE_TEXT, b"ignored") + b"\x8f\x00" + close_frame(CloseCode.NORMAL_CLOSURE))
    assert m.writer.closes == [(CloseCode.INTERNAL_ERROR, "internal error")]
    assert not m.listener.messages and m.machine.over


def test_after_end_nothing_more_is_acted_on(m: Machine) -> None:
    m.machine.end()
    m.machine.receive(masked(OPCODE_TEXT, b"x") + masked(OPCODE_PING) + masked(OPCODE_CLOSE))
    assert not m.listener.messages and not m.writer.controls and not m.writer.closes


# ---------------------------------------------------------------- framing errors


@pytest.mark.parametrize(
    "bad, code, reason",
    [
        (b"\x81\x01x", CloseCode.PROTOCOL_ERROR, "protocol error"),  # unmasked
        (masked(0x3), CloseCode.PROTOCOL_ERROR, "protocol error"),  # unknown opcode
        (masked(OPCODE_TEXT, b"\xc3\x28"), CloseCode.INVALID_PAYLOAD, "invalid UTF-8"),
        (b"\x81\xfe" + struct.pack("!H", MAX_MESSAGE_BYTES + 1), CloseCode.MESSAGE_TOO_BIG, "frame too large"),
    ],
)
def test_a_framing_error_closes_with_its_code_after_the_messages_before_it(
    m: Machine, bad: bytes, code: int, reason: str
) -> None:
    m.machine.receive(masked(OPCODE_TEXT, b"valid") + bad)
    assert m.listener.messages == ["valid"]
    assert m.writer.closes == [(code, reason)]
    assert m.machine.reading and not m.machine.over  # the peer's close is still awaited


def test_the_peers_close_in_the_read_of_a_framing_error_ends_the_connection(m: Machine) -> None:
    m.machine.receive(masked(0x3) + close_frame(CloseCode.PROTOCOL_ERROR))
    assert m.writer.closes == [(CloseCode.PROTOCOL_ERROR, "protocol error")]
    assert m.machine.over


def test_frames_over_the_rate_limit_close_with_4429_and_nothing_more_is_read() -> None:
    m = Machine(admitted=2)
    m.machine.receive(masked(OPCODE_TEXT, b"1") + masked(OPCODE_PING) + masked(OPCODE_TEXT, b"3"))
    assert m.listener.messages == ["1"]
    assert m.writer.closes == [(CloseCode.RATE_LIMITED, "too many frames")]
    assert not m.machine.reading


# ---------------------------------------------------------------- keep-alive


def test_keep_alive_pings_and_drops_a_peer_that_did_not_answer(m: Machine) -> None:
    assert m.machine.keep_alive()
    [(opcode, payload)] = m.writer.controls
    assert opcode == OPCODE_PING and len(payload) == 8
    assert not m.machine.keep_alive()


def test_only_a_pong_echoing_the_ping_counts_as_an_answer(m: Machine) -> None:
    m.machine.keep_alive()
    (_, payload) = m.writer.controls[0]
    m.machine.receive(masked(OPCODE_PONG, b"unsolicited"))
    assert not m.machine.keep_alive()
    m.machine.receive(masked(OPCODE_PONG, payload))
    assert m.machine.keep_alive()
    assert len(m.writer.controls) == 2 and m.writer.controls[1][1] != payload  # a new ping, a new payload


def test_keep_alive_leaves_a_closing_connection_to_its_close_deadline(m: Machine) -> None:
    m.machine.keep_alive()
    m.writer.close(CloseCode.GOING_AWAY)
    assert m.machine.keep_alive() and m.machine.keep_alive()
    assert len(m.writer.controls) == 1
