"""The life of one client socket, run in its request greenlet.

Authenticate with the first frame, attach to the user's actor through the
router, then pass every text frame to that actor until the socket closes.
This greenlet only reads; after `connect` all writing is the UserActor's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import gevent
import pykka

from actors import Node
from actors.messages import AttachSocket, ClientFrame, DetachSocket
from protocol import frames
from protocol.frames import CloseCode, ErrorCode, FrameError
from protocol.tokens import InvalidToken, authenticate
from web.transport import SocketTransport
from web.websocket import MessageTooLarge, ServiceWebSocket

log = logging.getLogger(__name__)
ATTACH_TIMEOUT = 10.0
CLOSE_FLUSH_TIMEOUT = 2.0


@dataclass(frozen=True)
class SocketPolicy:
    auth_secret: str
    auth_timeout: float
    limits: frames.Limits
    send_queue_frames: int


class _Closed(Exception):
    """The socket is closed or being closed; stop reading."""


def serve_socket(websocket: ServiceWebSocket, peer: str, query_token: str | None, node: Node, policy: SocketPolicy) -> None:
    transport = SocketTransport(websocket, peer, policy.send_queue_frames)
    try:
        user_id = _authenticate(websocket, transport, query_token, policy)
        actor = node.router.ask(AttachSocket(user_id, transport), timeout=ATTACH_TIMEOUT)
    except _Closed:
        transport.join(CLOSE_FLUSH_TIMEOUT)
        return
    except pykka.Timeout:
        log.error("socket %s: router did not answer within %.0f s", transport.id, ATTACH_TIMEOUT)
        transport.close(CloseCode.TRY_AGAIN_LATER, "server busy")
        transport.join(CLOSE_FLUSH_TIMEOUT)
        return
    log.debug("socket %s (%s): user %s connected", transport.id, peer, user_id)
    try:
        while True:
            actor.tell(ClientFrame(transport, _next_text(websocket, transport)))
    except _Closed:
        pass
    except pykka.ActorDeadError:
        log.error("socket %s: actor of user %s died; closing", transport.id, user_id)
        transport.close(CloseCode.INTERNAL_ERROR, "internal error")
    finally:
        node.router.tell(DetachSocket(user_id, transport))
        transport.join(CLOSE_FLUSH_TIMEOUT)
        log.debug("socket %s: user %s disconnected", transport.id, user_id)


def _authenticate(
    websocket: ServiceWebSocket, transport: SocketTransport, query_token: str | None, policy: SocketPolicy
) -> int:
    """Wait for a valid `connect` frame; return its user id or close the socket and raise `_Closed`."""
    try:
        with gevent.Timeout(policy.auth_timeout):
            text = _next_text(websocket, transport)
    except gevent.Timeout:
        transport.close(CloseCode.AUTH_TIMEOUT, "no connect frame in time")
        raise _Closed() from None
    ref: dict = {}
    try:
        command = frames.parse_frame(text, policy.limits)
        ref = frames.command_ref(command)
        if not isinstance(command, frames.Connect):
            raise FrameError(ErrorCode.UNAUTHORIZED, "the first frame must be connect")
        return authenticate(policy.auth_secret, command.token or query_token, command.user_id)
    except FrameError as error:
        reason, ref = error.message, error.ref or ref
    except InvalidToken as error:
        reason = f"invalid token: {error}"
    transport.write(frames.error_frame(ErrorCode.UNAUTHORIZED, reason, ref))
    transport.close(CloseCode.UNAUTHORIZED, "unauthorized")
    raise _Closed()


def _next_text(websocket: ServiceWebSocket, transport: SocketTransport) -> str:
    """The next text message; close the socket and raise `_Closed` on close, binary or oversize."""
    try:
        message = websocket.receive()
    except MessageTooLarge:
        transport.close(CloseCode.MESSAGE_TOO_BIG, "frame too large")
        raise _Closed() from None
    if message is None:
        raise _Closed()
    if isinstance(message, bytes):
        transport.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
        raise _Closed()
    return message

