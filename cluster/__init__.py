"""How the nodes of one deployment reach each other's users: the backends of `routing.Cluster`.

A node hands everything addressed to a user to its RouterActor, which tells
the user's actor if the user is connected here and also hands it to the
cluster backend, which carries it to the other nodes that have the user.

- `LocalCluster` (`[cluster] backend = local`): one node; nothing to carry.
- `RedisCluster` (`backend = redis`): Redis pub/sub, a channel per user. A node
  subscribes to a user's channel while the user has a socket on it, so a
  message travels only to nodes that have its recipient.

Redis carries only pushes. The database stays the single source of truth:
a push Redis loses is what the recipient gets from the database on its next
connect, as with a recipient that was offline; and when Redis returns after
an outage, every connected user gets the chat messages still undelivered.

May import `routing` (the port it implements and the payloads it carries)
and the layers below it (`storage`, `protocol`, `settings`, `metrics`,
`greenlets`); never `actors`, which uses a cluster only through
`routing.Cluster`, nor `web`.
"""

from __future__ import annotations

import socket
import uuid
from typing import Iterable, Sequence

from routing import Cluster, Deliver, PresenceChange, PresenceChanged, Rejoined, UserPayload
from settings import ClusterSettings


class LocalCluster:
    """A deployment of one node: every user is local, and there is no one to tell."""

    def __init__(self, node_name: str):
        self.node_name = node_name
        self._presence_changed: PresenceChanged | None = None

    def start(self, deliver: Deliver, rejoined: Rejoined, presence_changed: PresenceChanged) -> None:
        self._presence_changed = presence_changed

    def subscribe(self, user_id: int) -> None:
        pass

    def unsubscribe(self, user_id: int) -> None:
        pass

    def wait_subscribed(self, user_id: int, timeout: float) -> bool:
        return True

    def publish(self, user_id: int, payload: UserPayload) -> None:
        pass

    def publish_counted(self, deliveries: Iterable[tuple[int, UserPayload]]) -> set[int]:
        return set()

    def connected_among(self, user_ids: Iterable[int]) -> set[int]:
        return set()

    def set_present(self, user_ids: Sequence[int]) -> None:
        """Present on this node is online in the deployment."""
        self._presence_changed([PresenceChange(user_id, True) for user_id in user_ids], True)

    def set_absent(self, absences: Sequence[tuple[int, int]]) -> None:
        self._presence_changed([PresenceChange(user_id, False, closed_at) for user_id, closed_at in absences], True)

    def present_among(self, user_ids: Iterable[int]) -> set[int]:
        return set()

    def status(self) -> str:
        return "local"

    def close(self) -> None:
        pass


def node_name_of(settings: ClusterSettings, ws_port: int) -> str:
    """`[cluster] node_name`, or the host name and WebSocket port."""
    return settings.node_name or f"{socket.gethostname()}:{ws_port}"


def open_cluster(settings: ClusterSettings, ws_port: int) -> Cluster:
    """The backend `[cluster] backend` names, not started yet."""
    node_name = node_name_of(settings, ws_port)
    if settings.backend == "redis":
        from cluster.redis_pubsub import RedisCluster

        # a restarted node must not take the pushes its previous life published for itself
        return RedisCluster(
            settings.redis_url, node_name, instance=uuid.uuid4().hex, presence_ttl_seconds=settings.presence_ttl_seconds
        )
    return LocalCluster(node_name)


__all__ = ["LocalCluster", "node_name_of", "open_cluster"]
