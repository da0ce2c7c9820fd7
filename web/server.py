"""The pywsgi server and handler both ports use: every phase a peer controls has a deadline and a budget.

pywsgi waits for a peer as long as the peer likes, reads up to 6 MiB of
headers, and accepts every connection it can. Here, per connection:

- the whole request (request line, headers and body) must arrive within
  `request_timeout` of the connection, or of its first byte after a
  keep-alive wait, which may last `keep_alive_timeout`; a socket timeout
  bounds each write of the response. One `gevent.Timeout` covers the reading
  and is cancelled before the application runs, so a WebSocket leaves the
  handshake with no timer and no socket timeout.
- the headers get `web.headers.MAX_HEADER_BYTES` (431 beyond), and the body
  is read here, before the application, up to `max_body_bytes`; beyond it
  the application answers 413 and the connection closes, after reading
  what the client still sends for a moment so that it sees the answer.
- a connection still waiting for or sending its request is "pending": the
  server counts them, in all and per address, and closes a new connection
  at once beyond either cap, before it costs a greenlet.

The listen backlog (`LISTEN_BACKLOG`) holds a burst of new connections, such
as every client of a restarted node reconnecting, until they are accepted.
Running out of descriptors on accept is logged at most once a second and
accepting pauses briefly, instead of gevent's traceback per failed accept.
"""

from __future__ import annotations

import errno
import io
import logging
import time
from collections import Counter
from dataclasses import dataclass

import gevent
from gevent.pywsgi import Input, WSGIHandler, WSGIServer

from web.headers import MAX_HEADER_BYTES, HeadersTooLarge, read_headers

log = logging.getLogger(__name__)
DESCRIPTORS_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_PAUSE = 0.1  # seconds without accepting after running out of descriptors
LINGER_SECONDS = 2.0  # nginx's lingering close, shorter
LINGER_BYTES = 1024 * 1024
LINGER_READ_BYTES = 64 * 1024
# connections the kernel completes and holds until accepted (capped at net.core.somaxconn): a restarted node's
# clients all reconnect at once, and beyond the backlog each one's SYN is dropped and sent again only 1 s later
LISTEN_BACKLOG = 4096
LOG_INTERVAL = 1.0  # seconds between two log lines about the same trouble
BAD_REQUEST_RESPONSE = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
HEADERS_TOO_LARGE_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)


@dataclass(frozen=True)
class RequestLimits:
    """The deadlines and budgets of one server's connections (see the module docstring)."""

    request_timeout: float
    keep_alive_timeout: float
    max_body_bytes: int
    pending_connections: int
    pending_per_address: int


class LingeringInput(Input):
    """pywsgi's body reader, whose discarding of a body left unread (too large) stops after `LINGER_SECONDS`
    or `LINGER_BYTES`: long enough for a client that sends its whole body before reading to see the 413."""

    __slots__ = ()

    def _discard(self) -> None:
        with gevent.Timeout(LINGER_SECONDS, False):
            for _ in range(LINGER_BYTES // LINGER_READ_BYTES):
                if not self.read(LINGER_READ_BYTES):
                    return


class Throttle:
    """Counts events of one kind and says when to report them: at most once per `interval` seconds."""

    def __init__(self, interval: float = LOG_INTERVAL):
        self._interval = interval
        self._reported_at = float("-inf")
        self._unreported = 0

    def due(self) -> int:
        """Count one event; how many to report now (this one included), or 0 within the interval."""
        self._unreported += 1
        now = time.monotonic()
        if now - self._reported_at < self._interval:
            return 0
        count, self._unreported, self._reported_at = self._unreported, 0, now
        return count


class PendingConnections:
    """The connections of a server that are waiting for or sending their request, by client address."""

    def __init__(self, cap: int, per_address: int):
        self.cap = cap
        self.per_address = per_address
        self._per_address: Counter[str] = Counter()
        self._count = 0

    def admit(self, peer: str) -> bool:
        """Count a new connection from `peer` as pending, unless that would pass either cap."""
        if self._count >= self.cap or (self.per_address and self._per_address[peer] >= self.per_address):
            return False
        self.add(peer)
        return True

    def add(self, peer: str) -> None:
        """Count a connection as pending again (a kept-alive one awaiting its next request): never refused."""
        self._count += 1
        self._per_address[peer] += 1

    def release(self, peer: str) -> None:
        self._count -= 1
        self._per_address[peer] -= 1
        if not self._per_address[peer]:
            del self._per_address[peer]

    def from_address(self, peer: str) -> int:
        return self._per_address.get(peer, 0)

    def __len__(self) -> int:
        return self._count


class ServiceServer(WSGIServer):
    """pywsgi's server, admitting only as many pending connections as `limits` allow (see the module)."""

    backlog = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], application: object, limits: RequestLimits, handler_class: type):
        super().__init__(address, application, handler_class=handler_class, log=None, error_log=log)
        self.limits = limits
        self.pending = PendingConnections(limits.pending_connections, limits.pending_per_address)
        self.bad_requests = Throttle()  # logged by the handlers
        self._refusals = Throttle()
        self._exhaustion = Throttle()
        self._accept_pause: object | None = None

    def do_handle(self, sock: object, address: tuple) -> None:
        peer = address[0]
        if not self.pending.admit(peer):
            sock.close()
            if count := self._refusals.due():
                log.warning(
                    "port %s: closed %d new connection(s) at once: %d pending in all, %d from %s "
                    "([limits] pending_connections, pending_per_address)",
                    self.server_port, count, len(self.pending), self.pending.from_address(peer), peer,
                )  # fmt: skip
            return
        super().do_handle(sock, address)

    def do_read(self) -> tuple | None:
        try:
            return super().do_read()
        except OSError as error:
            if error.errno not in DESCRIPTORS_EXHAUSTED:
                raise
            self._pause_accepting(error)
            return None

    def _pause_accepting(self, error: OSError) -> None:
        """Out of descriptors: stop accepting for a moment (the waiting connections stay in the backlog)."""
        if count := self._exhaustion.due():
            log.error(
                "port %s: cannot accept connections: %s (%d failed accept(s) in the last second); retrying",
                self.server_port, error.strerror, count,
            )  # fmt: skip
        self.stop_accepting()
        self._accept_pause = self.loop.timer(ACCEPT_PAUSE)
        self._accept_pause.start(self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._accept_pause.close()
        self._accept_pause = None
        if self.started:
            self.start_accepting()

    def stop_accepting(self) -> None:
        super().stop_accepting()
        if self._accept_pause is not None:
            self._accept_pause.close()
            self._accept_pause = None


class ServiceHandler(WSGIHandler):
    """pywsgi's handler with deadlines and budgets on everything it reads (see the module docstring)."""

    server: ServiceServer
    # a response the peer does not take in time ends the connection quietly, like a reset one (gevent's
    # socket timeout carries its message, not an errno, where pywsgi looks for one)
    ignored_socket_errors = (*WSGIHandler.ignored_socket_errors, "timed out")

    def __init__(self, sock: object, address: tuple, server: ServiceServer, rfile: object = None):
        sock.settimeout(server.limits.request_timeout)  # each write of a response; reads have their deadline
        super().__init__(sock, address, server, rfile)
        self.peer = address[0] if address else "?"
        self._pending = True  # admitted by the server as pending
        self._requests = 0
        self._deadline: gevent.Timeout | None = None
        self._request_input: Input | None = None  # the request's body as it arrives
        self._body = b""  # what the application gets of it

    def MessageClass(self, rfile: object, *args: object) -> object:  # noqa: N802 - pywsgi's name
        return read_headers(rfile, MAX_HEADER_BYTES - len(self.requestline))

    def handle(self) -> None:
        try:
            super().handle()
        except OSError as error:  # the peer is gone, or did not take the response in time
            log.debug("connection from %s ended: %s", self.peer, error)
        finally:
            self._set_pending(False)

    def handle_one_request(self) -> tuple | bool | None:
        limits = self.server.limits
        self._set_pending(True)
        self._deadline = gevent.Timeout(limits.keep_alive_timeout if self._requests else limits.request_timeout)
        self._deadline.start()
        try:
            if not self._request_arrives():
                return None
            if self._requests:  # the keep-alive wait is over: the request itself gets its full time
                self._deadline.close()
                self._deadline = gevent.Timeout(limits.request_timeout)
                self._deadline.start()
            self._requests += 1
            return super().handle_one_request()
        except gevent.Timeout as timeout:
            if timeout is not self._deadline:
                raise
            log.debug("connection from %s: no complete request in time; closing", self.peer)
            return None
        finally:
            self._deadline.close()

    def _request_arrives(self) -> bool:
        """Wait for the first byte of a request; False if the connection ended instead."""
        try:
            return bool(self.rfile.peek(1))
        except OSError:
            return False

    def read_request(self, raw_requestline: str) -> bool:
        """Parse the request, read its body, and stop the deadline: what follows is the application's time."""
        super().read_request(raw_requestline)
        self._body = self._read_body()
        self._deadline.cancel()
        self._set_pending(False)
        return True

    def _read_body(self) -> bytes:
        """The body, up to one byte past `max_body_bytes` (enough for the application's 413)."""
        limit = self.server.limits.max_body_bytes
        chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        too_large = not chunked and (self.content_length or 0) > limit  # the application refuses it by its length
        expects_continue = self.headers.get("expect", "").lower() == "100-continue" and not too_large
        self._request_input = LingeringInput(
            self.rfile, self.content_length, self.socket if expects_continue else None, chunked
        )
        if too_large or not (chunked or self.content_length):
            body = b""
        else:
            body = self._request_input.read(limit + 1)
        if too_large or len(body) > limit:
            self.close_connection = True  # after the 413, and lingering over the rest of the body
        return body

    def get_environ(self) -> dict:
        environ = super().get_environ()
        environ["wsgi.input"] = Input(io.BytesIO(self._body), len(self._body))
        environ["wsgi.input_terminated"] = True  # read to its end, which `max_body_bytes` bounds
        self.wsgi_input = self._request_input  # pywsgi discards what is left of it after the response
        return environ

    def _handle_client_error(self, error: Exception) -> tuple[str, bytes] | None:
        """A request that cannot be read: 431 or 400 and close, logged in one line (pywsgi prints tracebacks)."""
        if isinstance(error, OSError):  # the peer went away while sending
            return None
        if count := self.server.bad_requests.due():
            port = self.server.server_port
            log.info("port %s: refused %d bad request(s), the last from %s: %.200s", port, count, self.peer, error)
        if isinstance(error, HeadersTooLarge):
            return "431", HEADERS_TOO_LARGE_RESPONSE
        return "400", BAD_REQUEST_RESPONSE

    def _set_pending(self, pending: bool) -> None:
        if pending != self._pending:
            self._pending = pending
            if pending:
                self.server.pending.add(self.peer)
            else:
                self.server.pending.release(self.peer)
