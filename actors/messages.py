"""Every message actors are sent, and the socket as actors see it. Immutable, so they are shared, never copied.

The payloads that also travel between nodes (`PushFrame`, `DeliverMessage`,
`DeliverNotification`) are in `routing`, below both `actors` and `cluster`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from gevent.event import AsyncResult

from protocol.frames import SendMessage
from protocol.notify import NotifyRequest
from routing import PresenceChange, UserPayload
from storage import Notification, StoreResult


class Transport(Protocol):
    """One client socket as actors see it (implemented in `web`). Only the socket's UserActor writes to it."""

    id: int
    closing: bool  # a close frame is queued or sent, or the connection is gone: nobody will read an answer

    def write(self, text: str, on_written: Callable[[], None] | None = None) -> bool:
        """Queue a frame, never blocking; `on_written()` runs once the kernel has it. False if closing."""

    def close(self, code: int, reason: str = "") -> None:
        """Start the close handshake; never blocks."""

    def wait_for_room(self, timeout: float) -> bool:
        """Wait until the send queue has room (True), or the timeout passes or the socket closes (False)."""


# ------------------------------------------------------------ to the RouterActor


@dataclass(frozen=True, slots=True)
class AttachSocket:
    """A socket authenticated as `user_id`; the router answers with the user's actor (ask)."""

    user_id: int
    transport: Transport


@dataclass(frozen=True, slots=True)
class DetachSocket:
    """The socket closed."""

    user_id: int
    transport: Transport


@dataclass(frozen=True, slots=True)
class ToUser:
    """Router: hand `payload` to the actor of `user_id` if that user is connected here, and to the other nodes."""

    user_id: int
    payload: UserPayload


@dataclass(frozen=True, slots=True)
class FromCluster:
    """Router: `payload` for `user_id` published by another node; hand it to the user's actor here, if any."""

    user_id: int
    payload: UserPayload


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Hand `payload` to every connected user's actor (`CatchUp`, `CloseAll`)."""

    payload: Any


@dataclass(frozen=True, slots=True)
class NotifyUsers:
    """Router (ask): deliver each notification to its recipient if connected here; answers a frozenset of those."""

    notifications: tuple[Notification, ...]
    actor_name: str


@dataclass(frozen=True, slots=True)
class ConnectedAmong:
    """Router (ask): which of these users are connected to this node; answers a frozenset."""

    user_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    """Router: users came online or went offline in the deployment (from the cluster backend); tell their watchers.
    `decided_here`: this node made the change, and records the offline users' lastSeen."""

    changes: tuple[PresenceChange, ...]
    decided_here: bool


@dataclass(frozen=True, slots=True)
class WatchList:
    """Router: the users whose presence this user's sockets here watch and may see; replaces the previous list."""

    user_id: int
    watched: frozenset[int]


@dataclass(frozen=True, slots=True)
class PresentAmong:
    """Router (ask): which of these users are present on this node (connected, or closed within the grace period);
    answers a frozenset."""

    user_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class GraceEnded:
    """The router to itself: the grace period after the user's last socket here closed at `closed_at` (ms) ended."""

    user_id: int
    closed_at: int


@dataclass(frozen=True, slots=True)
class RecordDepartures:
    """Router (ask): the node is shutting down, and no grace period will end: record now the lastSeen of every user
    present here (a user who comes back elsewhere is simply present again)."""


@dataclass(frozen=True, slots=True)
class ConnectedCount:
    """Router (ask): (users, sockets) connected to this node."""


# ------------------------------------------------------------ to a UserActor


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """A text frame a user's socket received, not yet parsed."""

    transport: Transport
    text: str


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Pushes between nodes were lost (a Redis outage): push the user's chat messages still undelivered."""


@dataclass(frozen=True, slots=True)
class WatchedPresence:
    """A user this user watches came online or went offline; `text` is the `presence` frame, encoded once for
    every watcher on this node."""

    change: PresenceChange
    text: str


@dataclass(frozen=True, slots=True)
class CloseAll:
    """Close every socket of the user (shutdown)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class FlushLikes:
    """A UserActor to itself: the like-grouping window of a post has ended."""

    post_id: int


@dataclass(frozen=True, slots=True)
class Stored:
    """A UserActor to itself: the message writer's answer for a `message` frame the actor submitted."""

    transport: Transport
    command: SendMessage
    outcome: StoreResult | Exception


# ------------------------------------------------------------ to the NotificationActor


@dataclass(frozen=True, slots=True)
class Notify:
    """Handle a notify API request; `reply` gets a `NotifyResult`, or the exception that stopped it."""

    request: NotifyRequest
    reply: AsyncResult


@dataclass(frozen=True, slots=True)
class NotifyResult:
    """What a `Notify` stored, as `reply` gets it."""

    recipients: int  # notifications stored
    online: int  # of those, recipients connected to some node when theirs was stored
