"""The WebSocket port: an HTTP upgrade request checked, answered 101, and its socket handed to a connection.

`check_upgrade` is the handshake's decision as a pure function: it refuses a
browser page whose `Origin` is not allowed (403), a client address over its
connection cap (429; its pending handshakes count), a WebSocket version it
does not speak and a malformed `Sec-WebSocket-Key` (400). `UpgradeHandler` is
gevent-websocket's handler with `web.server`'s deadlines and budgets on the
handshake; once the 101 is sent it detaches the socket from pywsgi, gives it
to a `WebSocketConnection` (`web.ws.connection`), runs the application (which
accepts the connection) and lets the request greenlet end.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
from dataclasses import dataclass

from geventwebsocket.handler import WebSocketHandler

from web.origins import origin_allowed
from web.server import RequestLimits, ServiceHandler, ServiceServer, Throttle
from web.ws.codec import MAX_FRAGMENTS
from web.ws.connection import ConnectionRegistry, RawSocket, WebSocketConnection

log = logging.getLogger(__name__)
_library_log = logging.getLogger(f"{__name__}.gevent_websocket")
_library_log.setLevel(logging.ERROR)
HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSIONS = WebSocketHandler.SUPPORTED_VERSIONS
READ_BUFFER_BYTES = 1024  # the handshake's reader; frames are read in larger reads afterwards
PLAIN_TEXT = ("Content-Type", "text/plain; charset=utf-8")
# in every request's environ on the WebSocket port: a function returning the `Refusal` (403 or 429) a handshake
# from this request's origin and address would get now, or None; what a client's probe asks (web.app)
REFUSAL_PROBE = "realtime.handshake_refusal"


@dataclass(frozen=True)
class HandshakePolicy:
    """What a `WebSocketServer` checks at the handshake and sets its connections up with."""

    max_message_bytes: int
    allowed_origins: frozenset[str]  # see web.origins
    connections_per_address: int  # 0: no cap
    max_fragments: int = MAX_FRAGMENTS  # in one message


@dataclass(frozen=True)
class Refusal:
    """The answer to a handshake that may not proceed; `logged` says why, when the refusal is worth a log line."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    logged: str | None = None


def check_upgrade(environ: dict, policy: HandshakePolicy, connections_from_address: int) -> Refusal | None:
    """Why the upgrade request in `environ` is refused, or None if it may proceed. `connections_from_address`
    counts the open connections and the pending handshakes of its client address, this one excluded."""
    refusal = admission_refusal(environ, policy, connections_from_address)
    if refusal is not None:
        return refusal
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") not in SUPPORTED_VERSIONS:
        version_header = ("Sec-WebSocket-Version", ", ".join(SUPPORTED_VERSIONS))
        return Refusal("400 Bad Request", [version_header], b"Unsupported WebSocket version")
    if not _valid_key(_key(environ)):
        return Refusal("400 Bad Request", [], b"Invalid Sec-WebSocket-Key")
    return None


def admission_refusal(environ: dict, policy: HandshakePolicy, connections_from_address: int) -> Refusal | None:
    """The refusals that depend on who asks, not on how (403 origin, 429 connection cap): what a probe learns."""
    origin = environ.get("HTTP_ORIGIN")
    if not origin_allowed(origin, policy.allowed_origins):
        return Refusal(
            "403 Forbidden",
            [PLAIN_TEXT],
            b"This origin may not open a WebSocket here ([server] allowed_origins).",
            f"origin {origin!r:.200} is not allowed",
        )
    cap = policy.connections_per_address
    if cap and connections_from_address >= cap:
        return Refusal(
            "429 Too Many Requests",
            [PLAIN_TEXT],
            b"Too many connections from this address ([limits] connections_per_address).",
            f"it already has {cap} connections or handshakes",
        )
    return None


def accept_key(environ: dict) -> str:
    """The `Sec-WebSocket-Accept` answering the request's `Sec-WebSocket-Key`."""
    digest = hashlib.sha1((_key(environ) + HANDSHAKE_GUID).encode("latin-1")).digest()
    return base64.b64encode(digest).decode("latin-1")


def _key(environ: dict) -> str:
    return environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()


def _valid_key(key: str) -> bool:
    """RFC 6455 4.1: the key is 16 random bytes, base64-encoded."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


class UpgradeHandler(ServiceHandler, WebSocketHandler):
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

    def get_environ(self) -> dict:
        environ = super().get_environ()
        environ[REFUSAL_PROBE] = lambda: admission_refusal(environ, self.server.handshake_policy, self._from_address())
        return environ

    def _from_address(self) -> int:
        """The open connections and pending handshakes of this request's client address."""
        return self.server.connections.from_address(self.peer) + self.server.pending.from_address(self.peer)

    def upgrade_connection(self):
        server = self.server
        peer = self.client_address[0] if self.client_address else "?"
        refusal = check_upgrade(self.environ, server.handshake_policy, self._from_address())
        if refusal is not None:
            return self._refuse(refusal)

        # small frames go out at once: without this, Nagle holds a frame back until the previous one is acked
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        policy = server.handshake_policy
        self.websocket = WebSocketConnection(peer, policy.max_message_bytes, server.connections, policy.max_fragments)
        self.environ.update(
            {"wsgi.websocket_version": self.environ["HTTP_SEC_WEBSOCKET_VERSION"], "wsgi.websocket": self.websocket}
        )
        self.start_response(
            "101 Switching Protocols",
            [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept_key(self.environ))],
        )
        return None

    def _refuse(self, refusal: Refusal) -> list[bytes]:
        """Answer a refused handshake; the logged refusals at most once a second: a refused peer may retry in a
        loop."""
        if refusal.logged is not None and (count := self.server.refused_handshakes.due()):
            log.info("refused %d WebSocket handshake(s), the last from %s: %s", count, self.peer, refusal.logged)
        self.start_response(refusal.status, refusal.headers)
        return [refusal.body]

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
        super().__init__(address, application, limits, UpgradeHandler)
        self.handshake_policy = handshake_policy
        self.connections = connections
        self.refused_handshakes = Throttle()


def _ignore_start_response(status: str, headers: list, exc_info: object = None) -> None:
    """The response was the 101 already sent; what the application answers after it is discarded."""
