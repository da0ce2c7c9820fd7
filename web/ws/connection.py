"""WebSocket connections that hold no greenlet while idle, and the keep-alive that pings them.

gevent-websocket's model parks a greenlet in `receive()` for the life of
every socket; under Flask that greenlet's saved stack and frames cost more
than everything else a connected user needs. Here the handshake
(`web.ws.handshake`) hands the socket to a `WebSocketConnection` and the
request greenlet ends. The connection watches the socket with a libev
watcher; when bytes arrive, a pooled greenlet reads them and gives them to
the connection's `ServerStateMachine` (`web.ws.codec`), which decides what
each frame means. All writes, pongs and close frames included, go through
the connection's `WebSocketTransport`, whose close deadline ends the
connection whatever the peer does.

`keep_alive` pings every connection at an interval and drops those that did
not answer the previous ping: a peer that vanished without a close frame, or
one that does not read.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Iterator, Protocol

import gevent
from gevent.monkey import get_original

from greenlets import run_soon
from protocol.frames import CloseCode
from web.ws.codec import MAX_FRAGMENTS, ServerStateMachine
from web.ws.transport import WebSocketTransport, ignore_text

log = logging.getLogger(__name__)
RawSocket = get_original("socket", "socket")  # the standard library's socket, which never waits
RECEIVE_BYTES = 64 * 1024
CLOSE_FLUSH_TIMEOUT = 2.0
PINGS_PER_TURN = 256
_READ = 1


class ConnectionRegistry:
    """The open connections of a server, counted by client address (for the per-address cap)."""

    def __init__(self) -> None:
        self._connections: set[WebSocketConnection] = set()
        self._per_address: Counter[str] = Counter()

    def add(self, connection: WebSocketConnection) -> None:
        if connection not in self._connections:
            self._connections.add(connection)
            self._per_address[connection.peer] += 1

    def discard(self, connection: WebSocketConnection) -> None:
        if connection in self._connections:
            self._connections.discard(connection)
            self._per_address[connection.peer] -= 1
            if not self._per_address[connection.peer]:
                del self._per_address[connection.peer]

    def from_address(self, peer: str) -> int:
        return self._per_address.get(peer, 0)

    def __iter__(self) -> Iterator[WebSocketConnection]:
        return iter(list(self._connections))

    def __len__(self) -> int:
        return len(self._connections)


def keep_alive(registry: ConnectionRegistry, interval: float) -> None:
    """Forever: every `interval` seconds ping each connection, and drop those that did not answer the last ping."""
    while True:
        gevent.sleep(interval)
        for count, connection in enumerate(registry, 1):
            connection.ping_or_drop()
            if count % PINGS_PER_TURN == 0:
                gevent.sleep(0)  # ten thousand pings at once would hold up chat for a noticeable moment


class Listener(Protocol):
    """What a connection tells about its socket, in order, from one greenlet at a time."""

    def on_message(self, message: str | bytes) -> None: ...

    def on_closed(self) -> None: ...


class WebSocketConnection:
    """One upgraded socket: reads when readable and feeds its state machine, which hands messages to a listener."""

    __slots__ = (
        "transport", "peer", "_socket", "_already_read", "_max_message_bytes", "_max_fragments", "_machine",
        "_listener", "_watcher", "_registry", "_finished",
    )  # fmt: skip

    def __init__(
        self, peer: str, max_message_bytes: int, registry: ConnectionRegistry, max_fragments: int = MAX_FRAGMENTS
    ):
        self.peer = peer
        self.transport: WebSocketTransport | None = None  # set by accept()
        self._socket: RawSocket | None = None  # set by adopt()
        self._already_read = b""
        self._max_message_bytes = max_message_bytes
        self._max_fragments = max_fragments
        self._machine: ServerStateMachine | None = None  # set by accept()
        self._listener: Listener | None = None
        self._watcher = None
        self._registry = registry
        self._finished = False

    def adopt(self, sock: RawSocket, already_read: bytes) -> None:
        """Own `sock`; `already_read` is what the handshake's reader had buffered past the request."""
        self._socket = sock
        self._already_read = already_read

    def accept(
        self,
        listener: Listener,
        max_queued_frames: int,
        max_queued_bytes: int,
        admit_frame: Callable[[], bool],
        on_text_sent: Callable[[str], None] = ignore_text,
    ) -> WebSocketTransport:
        """Called by the application: messages go to `listener`, every frame the peer sends (control frames
        and fragments included, before and after login) must pass `admit_frame`, or the connection is closed
        with 4429; returns the transport that writes to the socket, which calls `on_text_sent` with each text
        frame it hands to the kernel."""
        self._listener = listener
        self.transport = WebSocketTransport(
            self._socket, self.peer, max_queued_frames, max_queued_bytes, lambda: run_soon(self._finish), on_text_sent
        )
        self._machine = ServerStateMachine(
            self.transport, listener, self._max_message_bytes, self._max_fragments, admit_frame
        )
        return self.transport

    def start(self) -> None:
        """Start reading if the application accepted the socket, else close it."""
        if self._listener is None:
            self._socket.close()
            return
        self._registry.add(self)
        self._watcher = gevent.get_hub().loop.io(self._socket.fileno(), _READ)
        already_read, self._already_read = self._already_read, b""
        if already_read:
            run_soon(self._receive, already_read)
        else:
            self._watcher.start(self._on_readable)

    def _on_readable(self) -> None:
        # runs in the hub, which must not block: stop watching and read in a greenlet of its own
        self._watcher.stop()
        run_soon(self._receive, None)

    def _receive(self, data: bytes | None) -> None:
        try:
            if data is None:
                data = self._socket.recv(RECEIVE_BYTES)
        except BlockingIOError:
            self._watcher.start(self._on_readable)  # woken without data after all
            return
        except OSError:
            data = b""
        if not data:
            self._finish()
            return
        try:
            self._machine.receive(data)
            if self._machine.over:  # the peer's close: nothing more to wait for
                self._finish()
        except Exception:
            log.exception("socket %s: failed to handle a frame; closing", self.transport.id)
            self._machine.fail(CloseCode.INTERNAL_ERROR, "internal error")
        if not self._finished and self._machine.reading:
            self._watcher.start(self._on_readable)

    def ping_or_drop(self) -> None:
        """Ping the connection, or drop it if it did not answer the previous ping (see `keep_alive`)."""
        if self._finished or self._machine is None or self._machine.keep_alive():
            return
        log.info("socket %s (%s): no answer to a ping; dropping the connection", self.transport.id, self.peer)
        self.transport.abandon()  # the peer is gone or does not read: nothing queued will reach it
        self._finish()

    def _finish(self) -> None:
        """The connection is over: tell the listener, flush what is queued, release the socket."""
        if self._finished:
            return
        self._finished = True
        self._machine.end()
        self._watcher.stop()
        self._registry.discard(self)
        try:
            self._listener.on_closed()
        finally:
            self.transport.join(CLOSE_FLUSH_TIMEOUT)
            self.transport.abandon()
            self._watcher.close()
            self._socket.close()
