"""The messages actors send each other. Immutable, so they are shared, never copied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from storage import Message, Notification


class Transport(Protocol):
    """One client socket as actors see it (implemented in `web.transport`)."""

    id: int

    def write(self, text: str, on_written: Any = None) -> bool: ...

    def close(self, code: int, reason: str = "") -> None: ...


@dataclass(frozen=True, slots=True)
class AttachSocket:
    """A socket authenticated as `user_id`; the router answers with the user's actor."""

    user_id: int
    transport: Transport


@dataclass(frozen=True, slots=True)
class DetachSocket:
    """The socket closed."""

    user_id: int
    transport: Transport


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """A text frame a user's socket received, not yet parsed."""

    transport: Transport
    text: str


@dataclass(frozen=True, slots=True)
class ToUser:
    """Router: hand `payload` to the actor of `user_id` if that user is connected here, and to the other nodes."""

    user_id: int
    payload: Any


@dataclass(frozen=True, slots=True)
class FromCluster:
    """Router: `payload` for `user_id` published by another node; hand it to the user's actor here, if any."""

    user_id: int
    payload: Any


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Pushes between nodes were lost (a Redis outage): push the user's chat messages still undelivered."""


@dataclass(frozen=True, slots=True)
class DeliverMessage:
    """A stored chat message for this user: push it to every socket."""

    message: Message


@dataclass(frozen=True, slots=True)
class PushFrame:
    """Write an already-encoded frame to every socket of the user but `exclude` (a transport id)."""

    text: str
    exclude: int | None = None


@dataclass(frozen=True, slots=True)
class CloseAll:
    """Close every socket of the user (shutdown)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class DeliverNotification:
    """A stored notification for this user, by the user called `actor_name`."""

    notification: Notification
    actor_name: str


@dataclass(frozen=True, slots=True)
class NotifyUsers:
    """Router (ask): deliver each notification to its recipient if connected here; answers a frozenset of those."""

    notifications: tuple[Notification, ...]
    actor_name: str


@dataclass(frozen=True, slots=True)
class ConnectedAmong:
    """Router (ask): which of these users are connected to this node; answers a frozenset."""

    user_ids: tuple[int, ...]
