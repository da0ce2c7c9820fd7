"""WebSockets that hold no greenlet while idle.

gevent-websocket's model parks a greenlet in `receive()` for the life of
every socket; under Flask that greenlet's saved stack and frames cost more
than everything else a connected user needs. Here the handshake runs in the
request greenlet as usual, then `ServiceWebSocketHandler` hands the socket to
a `WebSocketConnection` and the request greenlet ends. The connection
watches the socket with a libev watcher; when bytes arrive, a pooled
greenlet reads them, decodes the frames (`web.framing`) and gives each
message to its listener. All writes, pongs and close frames included, go
through the connection's `SocketTransport`. Every frame the peer sends takes
a token from the connection's frame rate limit first; once the server has
decided to close, only the peer's close frame is acted on, and the
transport's close deadline ends the connection whatever the peer does.

The handshake refuses a browser page whose `Origin` is not allowed (403) and
a client address over its connection cap (429; its pending handshakes count).
Its deadlines and budgets are `web.server`'s. `keep_alive` pings every
connection at an interval and drops those that did not answer the previous
ping: a peer that vanished without a close frame, or one that does not read.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Iterator, Protocol

import gevent
from gevent.monkey import get_original
from geventwebsocket.handler import WebSocketHandler

from actors.rate_limit import Admission, RateLimiter
from greenlets import run_soon
from protocol.frames import CloseCode
from web.framing import (
    MAX_FRAGMENTS,
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameDecoder,
    FrameRateExceeded,
    InvalidUtf8,
    MessageTooLarge,
    ProtocolError,
    parse_close,
)
from web.origins import origin_allowed
from web.server import RequestLimits, ServiceHandler, ServiceServer, Throttle
from web.transport import SocketTransport

log = logging.getLogger(__name__)
_library_log = logging.getLogger(f"{__name__}.gevent_websocket")
_library_log.setLevel(logging.ERROR)
RawSocket = get_original("socket", "socket")  # the standard library's socket, which never waits
HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
READ_BUFFER_BYTES = 1024  # the handshake's reader; frames are read in RECEIVE_BYTES reads afterwards
RECEIVE_BYTES = 64 * 1024
CLOSE_FLUSH_TIMEOUT = 2.0
PINGS_PER_TURN = 256
# read once the server decided to close, for the rest of a frame on its way (a peer learns of a limit only from our
# close) and the peer's close; a peer that sends more is not closing, and nothing more is read from it
READ_WHILE_CLOSING_BYTES = 1024 * 1024
NO_STATUS = 1005
_READ = 1


@dataclass(frozen=True)
class HandshakePolicy:
    """What `ServiceWebSocketHandler` checks and sets up, given to its `WebSocketServer`."""

    max_message_bytes: int
    allowed_origins: frozenset[str]  # see web.origins
    connections_per_address: int  # 0: no cap
    max_fragments: int = MAX_FRAGMENTS  # in one message


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
    """One upgraded socket: reads when readable, hands messages to a listener, answers control frames."""

    __slots__ = (
        "transport", "peer", "_socket", "_already_read", "_decoder", "_frame_rate", "_listener", "_watcher",
        "_registry", "_finished", "_read_while_closing", "_deaf", "_awaited_pong",
    )  # fmt: skip

    def __init__(
        self, peer: str, max_message_bytes: int, registry: ConnectionRegistry, max_fragments: int = MAX_FRAGMENTS
    ):
        self.peer = peer
        self.transport: SocketTransport | None = None  # set by accept()
        self._socket: RawSocket | None = None  # set by adopt()
        self._already_read = b""
        self._decoder = FrameDecoder(max_message_bytes, max_fragments, self._admit_frame)
        self._frame_rate: RateLimiter | None = None  # set by accept()
        self._listener: Listener | None = None
        self._watcher = None
        self._registry = registry
        self._finished = False
        self._read_while_closing = 0  # bytes read since the server decided to close
        self._deaf = False  # read nothing more: the close deadline ends the connection
        self._awaited_pong: bytes | None = None  # the payload of our last ping, until the peer's pong echoes it

    def adopt(self, sock: RawSocket, already_read: bytes) -> None:
        """Own `sock`; `already_read` is what the handshake's reader had buffered past the request."""
        self._socket = sock
        self._already_read = already_read

    def accept(
        self, listener: Listener, max_queued_frames: int, max_queued_bytes: int, frame_rate: RateLimiter
    ) -> SocketTransport:
        """Called by the application: messages go to `listener`, every frame the peer sends (control frames
        and fragments included, before and after login) takes a token from `frame_rate`, or the connection is
        closed with 4429; returns the transport that writes to the socket."""
        self._listener = listener
        self._frame_rate = frame_rate
        self.transport = SocketTransport(
            self._socket, self.peer, max_queued_frames, max_queued_bytes, lambda: run_soon(self._finish)
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
            if self.transport.closing:
                self._read_while_closing += len(data)
                # enough for the rest of a frame on its way and the peer's close; a peer sending more is not closing
                self._deaf = self._read_while_closing > READ_WHILE_CLOSING_BYTES
            self._dispatch(data)
        except Exception:
            log.exception("socket %s: failed to handle a frame; closing", self.transport.id)
            self._fail(CloseCode.INTERNAL_ERROR, "internal error")
        if not self._finished and not self._deaf:
            self._watcher.start(self._on_readable)

    def ping_or_drop(self) -> None:
        """Drop the connection if it did not answer the previous ping, else ping it (see `keep_alive`).

        Only a pong that echoes our ping's random payload counts: the ping is queued behind everything sent
        before it, so the answer also proves the peer read all of that. A peer that sends but does not read,
        or reads too slowly to drain its queue within a round, is dropped like one that vanished.
        """
        if self._finished or self.transport is None or self.transport.closing:
            return  # a closing connection ends by the close deadline
        if self._awaited_pong is not None:
            log.info("socket %s (%s): no answer to a ping; dropping the connection", self.transport.id, self.peer)
            self.transport.abandon()  # the peer is gone or does not read: nothing queued will reach it
            self._finish()
            return
        self._awaited_pong = os.urandom(8)
        self.transport.send_control(OPCODE_PING, self._awaited_pong)

    def _admit_frame(self) -> bool:
        return self._frame_rate.admit() is Admission.ADMITTED

    def _dispatch(self, data: bytes) -> None:
        if self.transport.closing:
            self._decoder.discard_until_close()
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as error:
            self._handle_messages(error.decoded)  # the frames before the bad one are valid
            self._refuse(error)
            messages = self._decoder.feed(b"")  # the rest of this read may hold the peer's close already
        self._handle_messages(messages)

    def _handle_messages(self, messages: list[tuple[int, str | bytes]]) -> None:
        """Hand data messages to the listener and answer pings, until the server closes: from then on only the
        peer's close frame counts."""
        for opcode, payload in messages:
            if self._finished:
                return
            if opcode == OPCODE_CLOSE:
                self._on_close_frame(payload)
            elif self.transport.closing:
                continue  # we are closing: only the peer's close matters now
            elif opcode == OPCODE_TEXT or opcode == OPCODE_BINARY:
                self._listener.on_message(payload)
            elif opcode == OPCODE_PING:
                self.transport.send_control(OPCODE_PONG, payload)
            elif opcode == OPCODE_PONG and payload == self._awaited_pong:
                self._awaited_pong = None

    def _on_close_frame(self, payload: bytes) -> None:
        """The peer's close ends the connection: answer it, unless it answers ours, then close TCP at once."""
        if not self.transport.closing:
            try:
                code = parse_close(payload)
            except ProtocolError as error:
                self._refuse(error)
            else:
                self.transport.close(1000 if code == NO_STATUS else code)
        self._finish()

    def _refuse(self, error: ProtocolError) -> None:
        """Close for a framing error with the code RFC 6455 gives it (1009, 1007 or 1002), or for frames over the
        rate limit with 4429, after which nothing more is read."""
        if isinstance(error, FrameRateExceeded):
            log.info("socket %s (%s): frames over the rate limit; closing", self.transport.id, self.peer)
            self._deaf = True
            self._fail(CloseCode.RATE_LIMITED, "too many frames")
            return
        log.debug("socket %s (%s): protocol error: %s", self.transport.id, self.peer, error)
        if isinstance(error, MessageTooLarge):
            self._fail(CloseCode.MESSAGE_TOO_BIG, "frame too large")
        elif isinstance(error, InvalidUtf8):
            self._fail(1007, "invalid UTF-8")
        else:
            self._fail(1002, "protocol error")

    def _fail(self, code: int, reason: str) -> None:
        """Close with `code`; from then on only the peer's close is decoded, and it ends the connection at once
        (else the close deadline does)."""
        self.transport.close(code, reason)
        self._decoder.discard_until_close()

    def _finish(self) -> None:
        """The connection is over: tell the listener, flush what is queued, release the socket."""
        if self._finished:
            return
        self._finished = True
        self._watcher.stop()
        self._registry.discard(self)
        try:
            self._listener.on_closed()
        finally:
            self.transport.join(CLOSE_FLUSH_TIMEOUT)
            self.transport.abandon()
            self._watcher.close()
            self._socket.close()


class ServiceWebSocketHandler(ServiceHandler, WebSocketHandler):
    """gevent-websocket's handler, with `ServiceHandler`'s deadlines and budgets on the handshake, ending in a
    `WebSocketConnection` that owns the socket. Its server is a `WebSocketServer`."""

    server: WebSocketServer

    def __init__(self, sock: socket.socket, address: tuple, server: WebSocketServer, rfile: object = None):
        # pywsgi's reader buffers 8 KiB; only the handshake goes through it here
        if rfile is None:
            rfile = sock.makefile("rb", READ_BUFFER_BYTES)
        super().__init__(sock, address, server, rfile)

    def upgrade_websocket(self):
        # gevent-websocket answers a handshake with no version or not HTTP/1.1 with a str body, which pywsgi
        # cannot write (a TypeError, a traceback and a 500): make it bytes
        result = super().upgrade_websocket()
        return [part.encode() if isinstance(part, str) else part for part in result] if result else result

    def upgrade_connection(self):
        policy: HandshakePolicy = self.server.handshake_policy
        peer = self.client_address[0] if self.client_address else "?"
        origin = self.environ.get("HTTP_ORIGIN")
        if not origin_allowed(origin, policy.allowed_origins):
            return self._refuse_handshake(
                "403 Forbidden",
                b"This origin may not open a WebSocket here ([server] allowed_origins).",
                f"origin {origin!r:.200} is not allowed",
            )
        cap = policy.connections_per_address
        if cap and self.server.connections.from_address(peer) + self.server.pending.from_address(peer) >= cap:
            return self._refuse_handshake(
                "429 Too Many Requests",
                b"Too many connections from this address ([limits] connections_per_address).",
                f"it already has {cap} connections or handshakes",
            )
        version = self.environ.get("HTTP_SEC_WEBSOCKET_VERSION")
        if version not in self.SUPPORTED_VERSIONS:
            self.start_response("400 Bad Request", [("Sec-WebSocket-Version", ", ".join(self.SUPPORTED_VERSIONS))])
            return [b"Unsupported WebSocket version"]
        key = self.environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            valid_key = False
        if not valid_key:
            self.start_response("400 Bad Request", [])
            return [b"Invalid Sec-WebSocket-Key"]

        # small frames go out at once: without this, Nagle holds a frame back until the previous one is acked
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.websocket = WebSocketConnection(
            peer, policy.max_message_bytes, self.server.connections, policy.max_fragments
        )
        self.environ.update({"wsgi.websocket_version": version, "wsgi.websocket": self.websocket})
        accept = base64.b64encode(hashlib.sha1((key + HANDSHAKE_GUID).encode("latin-1")).digest()).decode("latin-1")
        self.start_response(
            "101 Switching Protocols",
            [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)],
        )
        return None

    def _refuse_handshake(self, status: str, body: bytes, why: str) -> list[bytes]:
        """Answer a handshake with `status`, logged once a second at most: a refused peer may retry in a loop."""
        if count := self.server.refused_handshakes.due():
            log.info("refused %d WebSocket handshake(s), the last from %s: %s", count, self.peer, why)
        self.start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [body]

    @property
    def logger(self) -> logging.Logger:
        """gevent-websocket's own log, which warns of each malformed handshake that its 4xx answer already
        refuses: kept below what the service logs, so that a peer cannot flood the log with them."""
        return _library_log

    def run_websocket(self):
        """Give the socket to the connection, run the application, and let this greenlet end."""
        connection: WebSocketConnection = self.websocket
        self.websocket = None
        connection.adopt(*self._detach_socket())
        list(self.application(self.environ, _ignore_start_response))
        connection.start()

    def _detach_socket(self) -> tuple[RawSocket, bytes]:
        """Take the socket from pywsgi, which then neither reads from nor closes it, with the bytes
        its handshake reader had already buffered (a client may send right after the handshake)."""
        self.socket.settimeout(0)
        already_read = self.rfile.peek()
        sock = RawSocket(fileno=self.socket.detach())
        sock.setblocking(False)
        self.socket = None
        self.close_connection = True
        return sock, already_read


class WebSocketServer(ServiceServer):
    """The WebSocket port: handshakes checked against `handshake_policy`, open sockets kept in `connections`."""

    def __init__(
        self,
        address: tuple[str, int],
        application: object,
        limits: RequestLimits,
        handshake_policy: HandshakePolicy,
        connections: ConnectionRegistry,
    ):
        super().__init__(address, application, limits, ServiceWebSocketHandler)
        self.handshake_policy = handshake_policy
        self.connections = connections
        self.refused_handshakes = Throttle()


def _ignore_start_response(status: str, headers: list, exc_info: object = None) -> None:
    """The response was the 101 already sent; what the application answers after it is discarded."""
