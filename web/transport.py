"""SocketTransport: the write side of a WebSocket, as the actors see it (`write` and `close`).

Writes go into a bounded queue that a short-lived greenlet sends in order, so
a UserActor never waits on a slow socket: a client that stops reading fills
its own queue and is closed with 1013, and nobody else notices. The greenlet
exists only while there is something to send, so idle sockets cost none, and
it sends everything queued so far in one system call.
"""

from __future__ import annotations

import itertools
import logging
import socket
from collections import deque
from typing import Callable

import gevent
from gevent.event import Event

from protocol.frames import CloseCode
from web.framing import OPCODE_CLOSE, OPCODE_TEXT, close_payload, encode_frame

log = logging.getLogger(__name__)
_transport_ids = itertools.count(1)
CLOSE_GRACE_SECONDS = 2.0  # how long a peer has to answer our close frame before the TCP connection is cut
MAX_WRITE_BYTES = 256 * 1024  # frames joined into one send


class SocketTransport:
    __slots__ = ("id", "peer", "closing", "_socket", "_max_queued", "_queue", "_writing", "_idle", "_room")

    def __init__(self, sock: socket.socket, peer: str, max_queued: int):
        self.id = next(_transport_ids)
        self.peer = peer
        self.closing = False  # a close frame is queued or sent, or the connection is gone
        self._socket = sock
        self._max_queued = max_queued
        # (opcode, payload, on_written): text payloads are str, encoded by the writer; control payloads are bytes
        self._queue: deque[tuple[int, str | bytes, Callable[[], None] | None]] = deque()
        self._writing = False
        self._idle: Event | None = None  # created only while someone waits for the writer to finish
        self._room: Event | None = None  # created only while someone waits for the queue to drain

    def write(self, text: str, on_written: Callable[[], None] | None = None) -> bool:
        """Queue a text frame; `on_written()` runs once it has been handed to the socket.

        Returns False if the socket is closing or was just closed for being too slow.
        """
        if self.closing:
            return False
        if len(self._queue) >= self._max_queued:
            log.info("socket %s (%s): %d frames unread, closing as too slow", self.id, self.peer, len(self._queue))
            self._queue.clear()
            self.close(CloseCode.TRY_AGAIN_LATER, "too slow to keep up")
            return False
        self._queue.append((OPCODE_TEXT, text, on_written))
        self._start_writer()
        return True

    def send_control(self, opcode: int, payload: bytes) -> None:
        """Queue a control frame (a pong) behind the frames already queued."""
        if not self.closing:
            self._queue.append((opcode, payload, None))
            self._start_writer()

    def close(self, code: int, reason: str = "") -> None:
        """Send the close frame after the frames already queued; the peer then has a grace period to answer."""
        if self.closing:
            return
        self.closing = True
        self._queue.append((OPCODE_CLOSE, close_payload(code, reason), None))
        self._start_writer()

    def abandon(self) -> None:
        """The connection is gone: drop whatever is queued and accept nothing more."""
        self.closing = True
        self._queue.clear()

    def wait_for_room(self, timeout: float) -> bool:
        """Wait until the queue is at most half full; False on timeout or if the socket is closing."""
        if len(self._queue) * 2 > self._max_queued:
            if self._room is None:
                self._room = Event()
            self._room.wait(timeout)
        return len(self._queue) * 2 <= self._max_queued and not self.closing

    def join(self, timeout: float) -> None:
        """Wait until everything queued, the close frame included, has been sent."""
        if self._writing:
            if self._idle is None:
                self._idle = Event()
            self._idle.wait(timeout)

    def _start_writer(self) -> None:
        if not self._writing:
            self._writing = True
            gevent.spawn_raw(self._send_queued)

    def _send_queued(self) -> None:
        try:
            while self._queue:
                chunk, callbacks, closed = self._take_chunk()
                if chunk:
                    self._socket.sendall(chunk)
                for callback in callbacks:
                    self._run_callback(callback)
                if self._room is not None and len(self._queue) * 2 <= self._max_queued:
                    self._room.set()
                    self._room = None
                if closed:
                    gevent.spawn_later(CLOSE_GRACE_SECONDS, _shutdown, self._socket)
                    return
        except OSError as error:
            log.debug("socket %s (%s): write failed: %s", self.id, self.peer, error)
            self.abandon()
        finally:
            self._writing = False
            for event in (self._room, self._idle):
                if event is not None:
                    event.set()
            self._room = self._idle = None

    def _take_chunk(self) -> tuple[bytes, list[Callable[[], None]], bool]:
        """Frames from the head of the queue joined for one send, their callbacks, and whether a close frame ends them."""
        frames: list[bytes] = []
        callbacks: list[Callable[[], None]] = []
        size = 0
        while self._queue and size < MAX_WRITE_BYTES:
            opcode, payload, on_written = self._queue.popleft()
            if opcode == OPCODE_TEXT:
                try:
                    payload = payload.encode("utf-8")
                except UnicodeEncodeError:
                    log.error("socket %s: dropped a frame that is not valid UTF-8: %.200r", self.id, payload)
                    continue
            frames.append(encode_frame(opcode, payload))
            size += len(frames[-1])
            if on_written is not None:
                callbacks.append(on_written)
            if opcode == OPCODE_CLOSE:
                self._queue.clear()
                return b"".join(frames), callbacks, True
        return b"".join(frames), callbacks, False

    def _run_callback(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            log.exception("socket %s: on_written callback failed", self.id)


def _shutdown(sock: socket.socket) -> None:
    """Cut a connection whose peer did not answer our close frame; its reader then sees the end of the stream."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
