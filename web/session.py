"""What the service does with one client socket once it is a WebSocket.

Authenticate with the first frame, attach to the user's actor through the
router, then pass every text frame to that actor until the socket closes.
A session only reads; after `connect` all writing is the UserActor's. Only
the application knows what its frames say, so it counts those the transport
hands to the kernel (`count_sent_frame`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import gevent
import pykka

import metrics
from actors import Node
from actors.messages import AttachSocket, ClientFrame, DetachSocket
from actors.rate_limit import Admission, RateLimiter
from protocol import frames
from protocol.frames import CloseCode, ErrorCode, FrameError
from protocol.tokens import InvalidToken, authenticate
from web.ws.connection import WebSocketConnection
from web.ws.transport import WebSocketTransport

log = logging.getLogger(__name__)
ATTACH_TIMEOUT = 10.0


@dataclass(frozen=True)
class SessionPolicy:
    auth_secret: str
    auth_timeout: float
    limits: frames.Limits
    send_queue_frames: int
    send_queue_bytes: int
    socket_frames_per_second: float  # every frame a socket sends, of any kind: beyond it, close 4429 at once
    socket_frame_burst: int
    sockets_per_user: int


class ClientSession:
    """The listener of one `WebSocketConnection`: its messages arrive here in order, one at a time."""

    __slots__ = ("transport", "_node", "_policy", "_query_token", "_user_id", "_actor", "_auth_deadline", "_frame_rate")

    def __init__(self, connection: WebSocketConnection, query_token: str | None, node: Node, policy: SessionPolicy):
        self._node = node
        self._policy = policy
        self._query_token = query_token
        self._user_id: int | None = None
        self._actor: pykka.ActorProxy | None = None
        self._frame_rate = RateLimiter(policy.socket_frames_per_second, policy.socket_frame_burst, strikes=0)
        self.transport: WebSocketTransport = connection.accept(
            self,
            policy.send_queue_frames,
            policy.send_queue_bytes,
            self.admit_frame,  # a bound method, not a closure: with ten thousand idle sockets every object counts
            count_sent_frame,
        )
        # a libev timer rather than a greenlet: its callback only queues a close frame, which the hub may do
        self._auth_deadline = gevent.get_hub().loop.timer(policy.auth_timeout)
        self._auth_deadline.start(self._auth_timed_out)

    def admit_frame(self) -> bool:
        """Whether the socket may send one more frame of any kind, within its frame rate."""
        return self._frame_rate.admit() is Admission.ADMITTED

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.transport.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
        elif self._actor is not None:
            self._forward(message)
        elif self._auth_deadline is not None:
            self._end_auth_wait()
            self._connect(message)

    def on_closed(self) -> None:
        self._end_auth_wait()
        if self._user_id is not None:
            if self._node.router.is_alive():  # after shutdown the router, and the user's actor with it, is gone
                self._node.router.tell(DetachSocket(self._user_id, self.transport))
            log.debug("socket %s: user %s disconnected", self.transport.id, self._user_id)

    def _forward(self, text: str) -> None:
        try:
            self._actor.tell(ClientFrame(self.transport, text))
        except pykka.ActorDeadError:
            log.error("socket %s: actor of user %s died; closing", self.transport.id, self._user_id)
            self.transport.close(CloseCode.INTERNAL_ERROR, "internal error")

    def _connect(self, text: str) -> None:
        """The first frame: it must be a valid `connect`; then attach to the user's actor."""
        user_id = self._authenticate(text)
        if user_id is None:
            return
        try:
            actor = self._node.router.ask(AttachSocket(user_id, self.transport), timeout=ATTACH_TIMEOUT)
        except pykka.Timeout:
            log.error("socket %s: router did not answer within %.0f s", self.transport.id, ATTACH_TIMEOUT)
            self.transport.close(CloseCode.TRY_AGAIN_LATER, "server busy")
            return
        except pykka.ActorDeadError:  # a connect that arrived while the service stops
            self.transport.close(CloseCode.GOING_AWAY, "server shutting down")
            return
        if actor is None:
            limit = self._policy.sockets_per_user
            refusal = f"this user already has {limit} open sockets"
            self.transport.write(frames.error_frame(ErrorCode.RATE_LIMITED, refusal, {"type": "connect"}))
            self.transport.close(CloseCode.POLICY_VIOLATION, "too many sockets for this user")
            return
        if self.transport.closing:  # the connection ended while the router answered
            self._node.router.tell(DetachSocket(user_id, self.transport))
            return
        self._user_id, self._actor = user_id, actor
        log.debug("socket %s (%s): user %s connected", self.transport.id, self.transport.peer, user_id)

    def _authenticate(self, text: str) -> int | None:
        """The user id the `connect` frame proves, or None after refusing it with 4401."""
        ref: dict = {}
        try:
            command = frames.parse_frame(text, self._policy.limits)
            metrics.frames_received.count(frames.command_type(command))
            ref = frames.command_ref(command)
            if not isinstance(command, frames.Connect):
                raise FrameError(ErrorCode.UNAUTHORIZED, "the first frame must be connect")
            return authenticate(self._policy.auth_secret, command.token or self._query_token, command.user_id)
        except FrameError as error:
            if not ref:
                metrics.frames_received.count("invalid")
            reason, ref = error.message, error.ref or ref
        except InvalidToken as error:
            reason = f"invalid token: {error}"
        self.transport.write(frames.error_frame(ErrorCode.UNAUTHORIZED, reason, ref))
        self.transport.close(CloseCode.UNAUTHORIZED, "unauthorized")
        return None

    def _auth_timed_out(self) -> None:
        self._end_auth_wait()
        self.transport.close(CloseCode.AUTH_TIMEOUT, "no connect frame in time")

    def _end_auth_wait(self) -> None:
        if self._auth_deadline is not None:
            self._auth_deadline.close()
            self._auth_deadline = None


def count_sent_frame(text: str) -> None:
    """Count a frame handed to the kernel by its type, and an `error` frame by its code too."""
    kind = frames.frame_type(text)
    metrics.frames_sent.count(kind)
    if kind == "error":
        metrics.errors_sent.count(frames.error_code(text))
