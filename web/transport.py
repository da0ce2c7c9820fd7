"""SocketTransport: a WebSocket as the actors see it, `write` and `close`.

Writes go into a bounded queue that a short-lived greenlet sends in order, so
a UserActor never waits on a slow socket: a client that stops reading fills
its own queue and is closed with 1013, and nobody else notices. The greenlet
exists only while there is something to send, so idle sockets cost none.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from typing import Callable

import gevent
from gevent.event import Event
from geventwebsocket.exceptions import WebSocketError

from protocol.frames import CloseCode
from web.websocket import ServiceWebSocket

log = logging.getLogger(__name__)
_transport_ids = itertools.count(1)
_CLOSE = object()


class SocketTransport:
    def __init__(self, websocket: ServiceWebSocket, peer: str, max_queued: int):
        self.id = next(_transport_ids)
        self.peer = peer
        self._websocket = websocket
        self._max_queued = max_queued
        self._queue: deque[tuple[object, object]] = deque()
        self._writing = False
        self._idle = Event()  # set while no writer greenlet runs
        self._idle.set()
        self._room = Event()
        self._room.set()
        self.closing = False

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
        self._queue.append((text, on_written))
        if len(self._queue) * 2 >= self._max_queued:
            self._room.clear()
        self._start_writer()
        return True

    def close(self, code: int, reason: str = "") -> None:
        """Send the close frame after the frames already queued."""
        if self.closing:
            return
        self.closing = True
        self._queue.append((_CLOSE, (code, reason)))
        self._start_writer()

    def wait_for_room(self, timeout: float) -> bool:
        """Wait until the queue is at most half full; False on timeout or if the socket is closing."""
        return self._room.wait(timeout) and not self.closing

    def join(self, timeout: float) -> None:
        """Wait until everything queued, the close frame included, has been sent."""
        self._idle.wait(timeout)

    def _start_writer(self) -> None:
        if not self._writing:
            self._writing = True
            self._idle.clear()
            gevent.spawn_raw(self._send_queued)

    def _send_queued(self) -> None:
        try:
            while self._queue:
                item, extra = self._queue.popleft()
                if item is _CLOSE:
                    code, reason = extra
                    self._queue.clear()
                    self._websocket.close(code, reason)
                    return
                try:
                    self._websocket.send_frame(item, ServiceWebSocket.OPCODE_TEXT)
                except UnicodeEncodeError:
                    log.error("socket %s: dropped a frame that is not valid UTF-8: %.200r", self.id, item)
                    continue
                if extra is not None:
                    self._run_callback(extra)
                if len(self._queue) * 2 < self._max_queued:
                    self._room.set()
        except (WebSocketError, OSError) as error:
            log.debug("socket %s (%s): write failed: %s", self.id, self.peer, error)
            self.closing = True
            self._queue.clear()
        finally:
            self._room.set()
            self._writing = False
            self._idle.set()

    def _run_callback(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            log.exception("socket %s: on_written callback failed", self.id)
