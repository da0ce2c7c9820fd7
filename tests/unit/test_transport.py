"""`web.ws.transport.WebSocketTransport` over a local socket pair, in this process's gevent hub: the byte budget of
the queue, the single pending pong, and the close deadline, with a peer that reads or does not."""

from __future__ import annotations

import socket
import struct
import time
from typing import Iterator

import gevent
import pytest
from gevent.event import Event

import web.ws.transport
from web.ws.codec import OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG, OPCODE_TEXT
from web.ws.transport import WebSocketTransport

FLUSH, GRACE = 0.3, 0.2  # the close deadline's two phases, shortened for these tests
SMALL_BUFFER = 4096


@pytest.fixture(autouse=True)
def short_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web.ws.transport, "CLOSE_FLUSH_SECONDS", FLUSH)
    monkeypatch.setattr(web.ws.transport, "CLOSE_GRACE_SECONDS", GRACE)


class Peer:
    """The transport's socket and the peer's end of a socket pair with small buffers; `cut` is set on_cut."""

    def __init__(self, max_frames: int = 1000, max_bytes: int = 1 << 20):
        ours, self.theirs = socket.socketpair()
        for sock in (ours, self.theirs):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        ours.setblocking(False)
        self.cut = Event()
        self.transport = WebSocketTransport(ours, "peer", max_frames, max_bytes, self.cut.set)
        self._buffer = b""

    def frames(self) -> list[tuple[int, bytes]]:
        """Every whole frame the peer can read now (server frames: unmasked, lengths under 64 KiB)."""
        self.theirs.setblocking(False)
        try:
            while chunk := self.theirs.recv(65536):
                self._buffer += chunk
        except BlockingIOError:
            pass
        frames = []
        while len(self._buffer) >= 2:
            length, header = self._buffer[1] & 0x7F, 2
            if length == 126:
                length, header = struct.unpack("!H", self._buffer[2:4])[0], 4
            if len(self._buffer) < header + length:
                break
            frames.append((self._buffer[0] & 0x0F, self._buffer[header : header + length]))
            self._buffer = self._buffer[header + length :]
        return frames


@pytest.fixture
def peer() -> Iterator[Peer]:
    made = Peer()
    yield made
    made.transport.abandon()
    made.theirs.close()


def test_a_peer_that_reads_gets_a_pong_for_every_ping(peer: Peer) -> None:
    for payload in (b"1", b"2", b"3"):
        peer.transport.send_control(OPCODE_PONG, payload)
    gevent.sleep(0)  # the hub sends what was queued
    assert peer.frames() == [(OPCODE_PONG, b"1"), (OPCODE_PONG, b"2"), (OPCODE_PONG, b"3")]


def test_pongs_queued_while_the_peer_does_not_read_are_one_pong_to_the_latest_ping(peer: Peer) -> None:
    filler = '{"type":"x","pad":"' + "p" * 1000 + '"}'
    for _ in range(40):  # ten times what the two small socket buffers hold
        peer.transport.write(filler)
    gevent.sleep(0)  # the kernel takes what it can, the rest waits
    for payload in (b"1", b"2", b"3"):
        peer.transport.send_control(OPCODE_PONG, payload)
    received: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 5
    while len(received) < 41 and time.monotonic() < deadline:
        received += peer.frames()  # the peer reads at last: the transport sends the rest as room appears
        gevent.sleep(0.001)
    assert received == [(OPCODE_TEXT, filler.encode())] * 40 + [(OPCODE_PONG, b"3")]


def test_a_pong_keeps_its_place_behind_the_frames_queued_before_it(peer: Peer) -> None:
    peer.transport.write('{"type":"a"}')
    peer.transport.send_control(OPCODE_PONG, b"1")
    peer.transport.write('{"type":"b"}')
    peer.transport.send_control(OPCODE_PING, b"ours")
    peer.transport.send_control(OPCODE_PONG, b"2")
    gevent.sleep(0)
    assert peer.frames() == [
        (OPCODE_TEXT, b'{"type":"a"}'),
        (OPCODE_PONG, b"1"),
        (OPCODE_TEXT, b'{"type":"b"}'),
        (OPCODE_PING, b"ours"),
        (OPCODE_PONG, b"2"),
    ]


def test_the_queue_is_bounded_in_bytes_then_closes_with_1013() -> None:
    peer = Peer(max_frames=1000, max_bytes=50_000)
    try:
        text = '{"type":"x","pad":"' + "p" * 5000 + '"}'
        written = 0
        while peer.transport.write(text):  # the peer reads nothing
            written += 1
            assert written < 100, "never refused"
        assert peer.transport.closing
        assert written * len(text) < 50_000 + len(text) + 8 * SMALL_BUFFER + 256 * 1024  # queue, kernel, one send
        assert not peer.transport.write(text)
    finally:
        peer.transport.abandon()
        peer.theirs.close()


def test_a_close_ends_by_the_flush_deadline_when_the_close_frame_never_leaves(peer: Peer) -> None:
    text = '{"type":"x","pad":"' + "p" * 1000 + '"}'
    for _ in range(40):  # more than both kernel buffers: the close frame stays queued
        peer.transport.write(text)
    gevent.sleep(0)
    started = time.monotonic()
    peer.transport.close(4408, "no connect frame in time")
    assert peer.cut.wait(FLUSH + 1.0), "never cut"
    assert FLUSH - 0.05 <= time.monotonic() - started
    assert not peer.transport.write(text)


def test_a_close_frame_written_gets_the_grace_period_for_an_answer(peer: Peer) -> None:
    started = time.monotonic()
    peer.transport.close(4401, "unauthorized")
    gevent.sleep(0)
    assert peer.frames() == [(OPCODE_CLOSE, struct.pack("!H", 4401) + b"unauthorized")]
    assert peer.cut.wait(GRACE + 1.0), "never cut"
    assert GRACE - 0.05 <= time.monotonic() - started < FLUSH + GRACE
