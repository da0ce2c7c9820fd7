"""What reaches a user's actor, from this node or from another, and the port it travels through between nodes.

The payloads below are the only actor messages that cross nodes: `actors`
hands them to a user's actor here, `cluster` carries them to the other nodes
as bytes. `Cluster` is what a node needs from the other nodes; `cluster`
implements it and `actors` uses it, so neither of the two imports the other.

May import only the layers below it (`storage`, `protocol`, `settings`, `metrics`,
`greenlets`); it needs only `storage`, for the records a payload carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from storage import Message, Notification


@dataclass(frozen=True, slots=True)
class PushFrame:
    """Write an already-encoded frame to every socket of the user but `exclude` (a transport id)."""

    text: str
    exclude: int | None = None


@dataclass(frozen=True, slots=True)
class DeliverMessage:
    """A stored chat message for this user: push it to every socket."""

    message: Message


@dataclass(frozen=True, slots=True)
class DeliverNotification:
    """A stored notification for this user, by the user called `actor_name`."""

    notification: Notification
    actor_name: str


UserPayload = PushFrame | DeliverMessage | DeliverNotification
Deliver = Callable[[int, UserPayload], None]  # (user id, payload) arriving from another node
Rejoined = Callable[[], None]  # the other nodes are reachable again after an outage


class Cluster(Protocol):
    """What a node needs from the other nodes; implemented by `cluster.LocalCluster` and `cluster.RedisCluster`."""

    node_name: str

    def start(self, deliver: Deliver, rejoined: Rejoined) -> None:
        """Begin receiving: `deliver(user_id, payload)` for each payload another node published, and
        `rejoined()` each time the other nodes are reachable again after an outage (pushes were lost)."""

    def subscribe(self, user_id: int) -> None:
        """The user's first socket connected here: receive what other nodes publish to the user. Never blocks."""

    def unsubscribe(self, user_id: int) -> None:
        """The user's last socket here closed. Never blocks."""

    def wait_subscribed(self, user_id: int, timeout: float) -> bool:
        """Wait until the subscription is active (True), or the timeout passes, or Redis is down (False)."""

    def publish(self, user_id: int, payload: UserPayload) -> None:
        """Carry `payload` to the other nodes that have the user; in order, never blocks, may be lost."""

    def publish_counted(self, deliveries: Iterable[tuple[int, UserPayload]]) -> set[int]:
        """Publish each (user id, payload) now to the other nodes that hold the user; answers those users."""

    def connected_among(self, user_ids: Iterable[int]) -> set[int]:
        """Which of these users have a socket on some node (this one included, when known to Redis)."""

    def status(self) -> str:
        """`local`, `ok`, or `degraded` (Redis unreachable: only this node's users are served live)."""

    def close(self) -> None:
        """Stop receiving and publishing."""


__all__ = [
    "Cluster",
    "Deliver",
    "DeliverMessage",
    "DeliverNotification",
    "PushFrame",
    "Rejoined",
    "UserPayload",
]
