"""SocketTransport: the write side of a WebSocket, as the actors see it (`write` and `close`).

Writes go into a bounded queue; a callback the hub runs as soon as the
writing greenlet yields hands everything queued by then to the kernel in one
system call, with no greenlet of its own. When the kernel's buffer is full,
a libev watcher sends the rest as the socket becomes writable, so a
UserActor never waits on a slow socket: a client that stops reading fills
its own queue and is closed with 1013, and nobody else notices.
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
from protocol.frames import CloseCode, error_code, frame_type
from web.framing import OPCODE_BINARY, OPCODE_CLOSE, OPCODE_TEXT, close_payload, encode_frame

log = logging.getLogger(__name__)
_transport_ids = itertools.count(1)
CLOSE_GRACE_SECONDS = 2.0  # how long a peer has to answer our close frame before the TCP connection is cut
MAX_WRITE_BYTES = 256 * 1024  # frames joined into one send
_WRITE = 2  # libev's EV_WRITE


class SocketTransport:
    __slots__ = (
        "id", "peer", "closing", "_socket", "_max_queued", "_queue", "_unsent", "_unsent_callbacks",
        "_unsent_closes", "_scheduled", "_writable", "_idle", "_room",
    )  # fmt: skip

    def __init__(self, sock: socket.socket, peer: str, max_queued: int):
        """`sock` is a non-blocking socket (not a gevent one): sends must never wait."""
        self.id = next(_transport_ids)
        self.peer = peer
        self.closing = False  # a close frame is queued or sent, or the connection is gone
        self._socket = sock
        self._max_queued = max_queued
        # (opcode, payload, on_written): text payloads are str, encoded when sent; the others are bytes
        self._queue: deque[tuple[int, str | bytes, Callable[[], None] | None]] = deque()
        self._unsent = b""  # frames taken from the queue that the kernel has not accepted yet
        self._unsent_callbacks: list[Callable[[], None]] = []
        self._unsent_closes = False  # the unsent bytes end with our close frame
        self._scheduled = False  # a hub callback will send what is queued
        self._writable = None  # libev watcher, created when the kernel's buffer first fills up
        self._idle: Event | None = None  # created only while someone waits for everything to be sent
        self._room: Event | None = None  # created only while someone waits for the queue to drain

    def write(self, message: str | bytes, on_written: Callable[[], None] | None = None) -> bool:
        """Send a text frame (`str`) or a binary one (`bytes`), or queue it if the socket cannot take it now;
        `on_written()` runs once the kernel has it. Returns False if the socket is closing or was just closed
        for being too slow.
        """
        if self.closing:
            return False
        if len(self._queue) >= self._max_queued:
            self._send()  # a burst written in one actor turn: the kernel may take it, the client may be fine
        if len(self._queue) >= self._max_queued:
            log.info("socket %s (%s): %d frames unread, closing as too slow", self.id, self.peer, len(self._queue))
            self._queue.clear()
            self.close(CloseCode.TRY_AGAIN_LATER, "too slow to keep up")
            return False
        self._queue.append((OPCODE_BINARY if isinstance(message, bytes) else OPCODE_TEXT, message, on_written))
        self._schedule_send()
        return True

    def send_control(self, opcode: int, payload: bytes) -> None:
        """Send a control frame (a pong) behind the frames already queued."""
        if not self.closing:
            self._queue.append((opcode, payload, None))
            self._schedule_send()

    def close(self, code: int, reason: str = "") -> None:
        """Send the close frame after the frames already queued; the peer then has a grace period to answer."""
        if self.closing:
            return
        self.closing = True
        metrics.sockets_closed.count(str(code))
        self._queue.append((OPCODE_CLOSE, close_payload(code, reason), None))
        self._schedule_send()

    def abandon(self) -> None:
        """The connection is gone: drop whatever is queued and accept nothing more."""
        self.closing = True
        self._queue.clear()
        self._unsent, self._unsent_callbacks = b"", []
        if self._writable is not None:
            self._writable.stop()
            self._writable.close()
            self._writable = None
        self._wake_waiters()

    def wait_for_room(self, timeout: float) -> bool:
        """Wait until the queue is at most half full; False on timeout or if the socket is closing."""
        if len(self._queue) * 2 > self._max_queued:
            if self._room is None:
                self._room = Event()
            self._room.wait(timeout)
        return len(self._queue) * 2 <= self._max_queued and not self.closing

    def join(self, timeout: float) -> None:
        """Wait until everything queued, the close frame included, has been sent."""
        if self._queue or self._unsent:
            if self._idle is None:
                self._idle = Event()
            self._idle.wait(timeout)

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
                self.abandon()
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
            if opcode == OPCODE_TEXT:
                kind = frame_type(payload)
                metrics.frames_sent.count(kind)
                if kind == "error":
                    metrics.errors_sent.count(error_code(payload))
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
                self._queue.clear()
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
        if self._room is not None and len(self._queue) * 2 <= self._max_queued:
            self._room.set()
            self._room = None
        if self._unsent_closes:
            self._unsent_closes = False
            gevent.spawn_later(CLOSE_GRACE_SECONDS, _shutdown, self._socket)

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


def _shutdown(sock: socket.socket) -> None:
    """Cut a connection whose peer did not answer our close frame; its reader then sees the end of the stream."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
