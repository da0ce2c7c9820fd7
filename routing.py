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
from typing import Callable, Iterable, Protocol, Sequence

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


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A user came online (its first socket anywhere in the deployment) or went offline (its last socket closed,
    and the grace period after it ended, or its node died)."""

    user_id: int
    online: bool
    last_seen: int | None = None  # offline: when the last socket closed (ms since the epoch), if known


UserPayload = PushFrame | DeliverMessage | DeliverNotification
Deliver = Callable[[int, UserPayload], None]  # (user id, payload) arriving from another node
Rejoined = Callable[[], None]  # the other nodes are reachable again after an outage
# (changes, decided here): every node hears every change; exactly one heard it with `decided here` (it stores lastSeen)
PresenceChanged = Callable[[Sequence[PresenceChange], bool], None]


class Cluster(Protocol):
    """What a node needs from the other nodes; implemented by `cluster.LocalCluster` and `cluster.RedisCluster`."""

    node_name: str

    def start(self, deliver: Deliver, rejoined: Rejoined, presence_changed: PresenceChanged) -> None:
        """Begin receiving: `deliver(user_id, payload)` for each payload another node published,
        `rejoined()` each time the other nodes are reachable again after an outage (pushes were lost), and
        `presence_changed(changes, decided_here)` for every deployment-wide presence change, this node's included."""

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

    def set_present(self, user_ids: Sequence[int]) -> None:
        """These users' first socket on this node opened. Never blocks; the users who thereby come online in the
        deployment come back through `presence_changed`, on every node."""

    def set_absent(self, absences: Sequence[tuple[int, int]]) -> None:
        """(user id, ms of the close): these users' last socket on this node closed a grace period ago. Never
        blocks; the users who thereby go offline in the deployment come back through `presence_changed`."""

    def present_among(self, user_ids: Iterable[int]) -> set[int]:
        """Which of these users are present on another node (local: none). May wait on Redis; empty when down."""

    def status(self) -> str:
        """`local`, `ok`, or `degraded` (Redis unreachable: only this node's users are served live)."""

    def close(self) -> None:
        """Stop receiving and publishing."""


__all__ = [
    "Cluster",
    "Deliver",
    "PresenceChange",
    "PresenceChanged",
    "DeliverMessage",
    "DeliverNotification",
    "PushFrame",
    "Rejoined",
    "UserPayload",
]
