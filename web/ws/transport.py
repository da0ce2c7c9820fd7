"""WebSocketTransport: the write side of a WebSocket, as the actors see it (`write` and `close`).

Writes go into a queue bounded in frames and in bytes; a callback the hub
runs as soon as the writing greenlet yields hands everything queued by then
to the kernel in one system call, with no greenlet of its own. When the
kernel's buffer is full, a libev watcher sends the rest as the socket becomes
writable, so a UserActor never waits on a slow socket: a client that stops
reading fills its own queue and is closed with 1013, and nobody else
notices. A close always ends: if the peer does not take our close frame, or
does not answer it, in time, the connection is cut (`on_cut`). The
transport knows nothing of what the frames say: the application counts its
own text frames through `on_text_sent`.
"""

from __future__ import annotations

import itertools
import logging
import socket
from collections import deque
from typing import Callable

import gevent
from gevent.event import Event

import metrics
from protocol.frames import CloseCode
from web.ws.codec import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_PONG,
    OPCODE_TEXT,
    close_payload,
    encode_frame,
    is_valid_close_code,
)

log = logging.getLogger(__name__)
_transport_ids = itertools.count(1)
CLOSE_GRACE_SECONDS = 2.0  # how long a peer has to answer our close frame before the TCP connection is cut
CLOSE_FLUSH_SECONDS = 3.0  # how long the frames queued before our close frame, and it, may take to reach the kernel
MAX_WRITE_BYTES = 256 * 1024  # frames joined into one send
_WRITE = 2  # libev's EV_WRITE
# The close codes `realtime_sockets_closed` counts by name: every code a close frame may carry that has one. The server
# answers a client's close with the client's code, so any other code a client chose is counted as `other`.
COUNTED_CLOSE_CODES = tuple(code for code in CloseCode if is_valid_close_code(code))
metrics.sockets_closed.declare(str(code) for code in COUNTED_CLOSE_CODES)


def ignore_text(text: str) -> None:
    """The `on_text_sent` of a transport whose text frames nobody counts."""


class WebSocketTransport:
    """The queue of frames to one socket, bounded in frames and in bytes, and the deadline of its close.

    Once `close` is called the connection ends within CLOSE_FLUSH_SECONDS +
    CLOSE_GRACE_SECONDS whatever the peer does: `on_cut` is called when the
    peer has not taken our close frame within the first, or has not answered
    it within the second, even a peer that never reads.
    """

    __slots__ = (
        "id", "peer", "closing", "_socket", "_on_cut", "_max_frames", "_max_bytes", "_queue", "_queued_bytes",
        "_pong", "_unsent", "_unsent_callbacks", "_unsent_closes", "_scheduled", "_writable", "_deadline", "_idle",
        "_room", "_on_text_sent",
    )  # fmt: skip

    def __init__(
        self,
        sock: socket.socket,
        peer: str,
        max_frames: int,
        max_bytes: int,
        on_cut: Callable[[], None],
        on_text_sent: Callable[[str], None] = ignore_text,
    ):
        """`sock` is a non-blocking socket (not a gevent one): sends must never wait. `on_cut` runs in the hub, and
        so does `on_text_sent(text)`, with each text frame as it is handed to the kernel."""
        self.id = next(_transport_ids)
        self.peer = peer
        self.closing = False  # a close frame is queued or sent, or the connection is gone
        self._socket = sock
        self._on_cut = on_cut
        self._on_text_sent = on_text_sent
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        # (opcode, payload, on_written): text payloads are str, encoded when sent; the others are bytes, but the
        # payload of a pong queued while the peer does not read is None: it is read from `_pong` when sent, so that
        # a newer ping replaces what it answers
        self._queue: deque[tuple[int, str | bytes | None, Callable[[], None] | None]] = deque()
        # payload lengths in the queue: bytes, or characters of text, which orjson writes as UTF-8 (one byte each
        # for ASCII, at most four; Python holds at most four per character too)
        self._queued_bytes = 0
        self._pong: bytes | None = None  # the payload of the one replaceable pong in the queue, if there is one
        self._unsent = b""  # frames taken from the queue that the kernel has not accepted yet
        self._unsent_callbacks: list[Callable[[], None]] = []
        self._unsent_closes = False  # the unsent bytes end with our close frame
        self._scheduled = False  # a hub callback will send what is queued
        self._writable = None  # libev watcher, created when the kernel's buffer first fills up
        self._deadline = None  # libev timer, started by close(): when it fires the connection is cut
        self._idle: Event | None = None  # created only while someone waits for everything to be sent
        self._room: Event | None = None  # created only while someone waits for the queue to drain

    def write(self, message: str | bytes, on_written: Callable[[], None] | None = None) -> bool:
        """Send a text frame (`str`) or a binary one (`bytes`), or queue it if the socket cannot take it now;
        `on_written()` runs once the kernel has it. Returns False if the socket is closing or was just closed
        for being too slow.
        """
        if self.closing:
            return False
        if len(self._queue) >= self._max_frames or self._queued_bytes >= self._max_bytes:
            self._send()  # a burst written in one actor turn: the kernel may take it, the client may be fine
            if len(self._queue) >= self._max_frames or self._queued_bytes >= self._max_bytes:
                log.info(
                    "socket %s (%s): %d frames (%d bytes) unread, closing as too slow",
                    self.id, self.peer, len(self._queue), self._queued_bytes,
                )  # fmt: skip
                self._clear_queue()
                self.close(CloseCode.TRY_AGAIN_LATER, "too slow to keep up")
                return False
        self._queue.append((OPCODE_BINARY if isinstance(message, bytes) else OPCODE_TEXT, message, on_written))
        self._queued_bytes += len(message)
        self._schedule_send()
        return True

    def send_control(self, opcode: int, payload: bytes) -> None:
        """Send a control frame behind the frames already queued.

        While the kernel takes no more (the peer does not read), a pong replaces the one still waiting, if any:
        RFC 6455 lets a peer's pings be answered by a pong to the latest, and a ping flood must not grow the
        queue. A peer that reads gets a pong for every ping.
        """
        if self.closing:
            return
        if opcode == OPCODE_PONG and self._unsent:
            if self._pong is not None:
                self._queued_bytes += len(payload) - len(self._pong)
                self._pong = payload
                return
            self._pong = payload
            self._queue.append((OPCODE_PONG, None, None))
        else:
            self._queue.append((opcode, payload, None))
        self._queued_bytes += len(payload)
        self._schedule_send()

    def close(self, code: int, reason: str = "") -> None:
        """Send the close frame after the frames already queued, and start the close deadline."""
        if self.closing:
            return
        self.closing = True
        metrics.sockets_closed.count(str(code))
        payload = close_payload(code, reason)
        self._queue.append((OPCODE_CLOSE, payload, None))
        self._queued_bytes += len(payload)
        self._cut_after(CLOSE_FLUSH_SECONDS)
        self._schedule_send()

    def abandon(self) -> None:
        """The connection is gone: drop whatever is queued and accept nothing more."""
        self.closing = True
        self._clear_queue()
        self._unsent, self._unsent_callbacks = b"", []
        for watcher in (self._writable, self._deadline):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self._writable = self._deadline = None
        self._wake_waiters()

    def wait_for_room(self, timeout: float) -> bool:
        """Wait until the queue is at most half full; False on timeout or if the socket is closing."""
        if not self._has_room():
            if self._room is None:
                self._room = Event()
            self._room.wait(timeout)
        return self._has_room() and not self.closing

    def join(self, timeout: float) -> None:
        """Wait until everything queued, the close frame included, has been sent."""
        if self._queue or self._unsent:
            if self._idle is None:
                self._idle = Event()
            self._idle.wait(timeout)

    def _has_room(self) -> bool:
        return len(self._queue) * 2 <= self._max_frames and self._queued_bytes * 2 <= self._max_bytes

    def _clear_queue(self) -> None:
        self._queue.clear()
        self._queued_bytes = 0
        self._pong = None

    def _cut_after(self, seconds: float) -> None:
        """(Re)start the close deadline."""
        if self._deadline is not None:
            self._deadline.close()
        self._deadline = gevent.get_hub().loop.timer(seconds)
        self._deadline.start(self._cut)

    def _cut(self) -> None:
        """The close deadline passed, or a write failed: nothing queued will reach the peer, the connection ends."""
        self.abandon()
        self._on_cut()

    def _schedule_send(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            gevent.get_hub().loop.run_callback(self._send)

    def _send(self) -> None:
        """Hand the kernel as much as it takes; runs in the hub, which it must never block."""
        self._scheduled = False
        if self._writable is not None and self._writable.active:
            return  # waiting for room in the kernel's buffer: the watcher sends in order
        while self._queue or self._unsent:
            if not self._unsent:
                self._take_chunk()
            try:
                sent = self._socket.send(self._unsent)
            except BlockingIOError:
                sent = 0
            except OSError as error:
                log.debug("socket %s (%s): write failed: %s", self.id, self.peer, error)
                self._cut()
                return
            if sent < len(self._unsent):
                self._unsent = self._unsent[sent:]
                self._wait_until_writable()
                return
            self._sent()
        self._wake_waiters()

    def _take_chunk(self) -> None:
        """Frames from the head of the queue, encoded and joined for one send, with their callbacks."""
        frames: list[bytes] = []
        size = 0
        while self._queue and size < MAX_WRITE_BYTES:
            opcode, payload, on_written = self._queue.popleft()
            if payload is None:  # the replaceable pong
                payload, self._pong = self._pong, None
            self._queued_bytes -= len(payload)
            if opcode == OPCODE_TEXT:
                self._on_text_sent(payload)
                try:
                    payload = payload.encode("utf-8")
                except UnicodeEncodeError:
                    log.error("socket %s: dropped a frame that is not valid UTF-8: %.200r", self.id, payload)
                    continue
            frames.append(encode_frame(opcode, payload))
            size += len(frames[-1])
            if on_written is not None:
                self._unsent_callbacks.append(on_written)
            if opcode == OPCODE_CLOSE:
                self._clear_queue()
                self._unsent_closes = True
                break
        self._unsent = b"".join(frames)

    def _sent(self) -> None:
        """The unsent bytes are all with the kernel now."""
        callbacks, self._unsent, self._unsent_callbacks = self._unsent_callbacks, b"", []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("socket %s: on_written callback failed", self.id)
        if self._room is not None and self._has_room():
            self._room.set()
            self._room = None
        if self._unsent_closes:
            self._unsent_closes = False
            self._cut_after(CLOSE_GRACE_SECONDS)  # the close frame left within CLOSE_FLUSH_SECONDS: now the grace

    def _wait_until_writable(self) -> None:
        if self._writable is None:
            self._writable = gevent.get_hub().loop.io(self._socket.fileno(), _WRITE)
        self._writable.start(self._on_writable)

    def _on_writable(self) -> None:
        self._writable.stop()
        self._send()

    def _wake_waiters(self) -> None:
        for event in (self._room, self._idle):
            if event is not None:
                event.set()
        self._room = self._idle = None
