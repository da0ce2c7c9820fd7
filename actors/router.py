"""RouterActor: which users are connected to this node, and their UserActors."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import pykka

from actors.messages import (
    AttachSocket,
    Broadcast,
    ConnectedAmong,
    ConnectedCount,
    DetachSocket,
    FromCluster,
    NotifyUsers,
    ToUser,
)
from actors.runtime import GeventActor
from routing import Cluster, DeliverNotification
from storage import Notification

log = logging.getLogger(__name__)


@dataclass
class _Route:
    actor: pykka.ActorRef
    sockets: set[int] = field(default_factory=set)


class RouterActor(GeventActor):
    """Maps user ids to UserActors; starts one on a user's first socket, stops it after the last.

    Socket attach and detach both pass through here, so deciding that a user's
    last socket is gone and starting a new actor for the user never race. The
    cluster backend is subscribed to a user's pushes while the user has a
    route here, and gets everything addressed to a user, for the other nodes.
    """

    # Every chat message passes through here, and a turn is a lookup and a tell. Yielding would queue
    # the router behind every other greenlet once per hub loop: under load that capped routing at about
    # 1,500 messages a second while storage kept up with 5,000 (see README, Performance).
    fairness_batch = None

    def __init__(self, start_user_actor: Callable[[int], pykka.ActorRef], sockets_per_user: int, cluster: Cluster):
        super().__init__()
        self._start_user_actor = start_user_actor
        self._cluster = cluster
        self._sockets_per_user = sockets_per_user
        self._routes: dict[int, _Route] = {}

    def on_receive(self, message: Any) -> Any:
        match message:
            case ToUser(user_id=user_id, payload=payload):
                self._forward(user_id, payload)
                self._cluster.publish(user_id, payload)
            case FromCluster(user_id=user_id, payload=payload):
                self._forward(user_id, payload)
            case AttachSocket():
                return self._attach(message)
            case DetachSocket():
                self._detach(message)
            case ConnectedAmong(user_ids=user_ids):
                return frozenset(user_id for user_id in user_ids if user_id in self._routes)
            case NotifyUsers(notifications=notifications, actor_name=actor_name):
                return self._notify(notifications, actor_name)
            case Broadcast(payload=payload):
                for user_id in list(self._routes):
                    self._forward(user_id, payload)
            case ConnectedCount():
                return len(self._routes), sum(len(route.sockets) for route in self._routes.values())
            case _:
                log.warning("router: unexpected message %r", message)
        return None

    def _attach(self, message: AttachSocket) -> pykka.ActorRef | None:
        """The user's actor, which now owns the socket; None if the user already has all the sockets allowed."""
        route = self._routes.get(message.user_id)
        if route is None or not route.actor.is_alive():
            if route is None:
                self._cluster.subscribe(message.user_id)
            route = self._routes[message.user_id] = _Route(self._start_user_actor(message.user_id))
        elif len(route.sockets) >= self._sockets_per_user:
            return None
        route.sockets.add(message.transport.id)
        route.actor.tell(message)
        return route.actor

    def _detach(self, message: DetachSocket) -> None:
        route = self._routes.get(message.user_id)
        if route is None or message.transport.id not in route.sockets:
            return
        route.sockets.discard(message.transport.id)
        self._forward(message.user_id, message)
        if not route.sockets and self._routes.get(message.user_id) is route:
            self._drop_route(message.user_id)
            route.actor.stop(block=False)

    def _drop_route(self, user_id: int) -> None:
        del self._routes[user_id]
        self._cluster.unsubscribe(user_id)

    def _notify(self, notifications: tuple[Notification, ...], actor_name: str) -> frozenset[int]:
        return frozenset(
            n.user_id
            for n in notifications
            if self._forward(n.user_id, DeliverNotification(notification=n, actor_name=actor_name))
        )

    def _forward(self, user_id: int, payload: Any) -> bool:
        """Tell the user's actor; False if the user is not connected here."""
        route = self._routes.get(user_id)
        if route is None:
            return False
        try:
            route.actor.tell(payload)
        except pykka.ActorDeadError:
            log.warning("router: actor of user %s died; dropping its route", user_id)
            self._drop_route(user_id)
            return False
        return True


__all__ = ["RouterActor"]
