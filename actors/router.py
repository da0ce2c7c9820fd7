"""RouterActor: which users are connected to this node, their UserActors, and their presence here."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import gevent
import pykka

from actors.messages import (
    AttachSocket,
    Broadcast,
    ConnectedAmong,
    ConnectedCount,
    DetachSocket,
    FromCluster,
    GraceEnded,
    NotifyUsers,
    PresenceUpdate,
    PresentAmong,
    RecordDepartures,
    ToUser,
    WatchedPresence,
    WatchList,
)
from actors.runtime import GeventActor
from protocol import frames
from routing import Cluster, DeliverNotification, PresenceChange
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

    Presence on this node lives here too: a user is present from its first
    socket until a grace period after its last (the cluster backend decides
    what that means for the deployment), and each change the backend reports
    is told to the users here who watch it.
    """

    # Every chat message passes through here, and a turn is a lookup and a tell. Yielding would queue
    # the router behind every other greenlet once per hub loop: under load that capped routing at about
    # 1,500 messages a second while storage kept up with 5,000 (docs/performance.md).
    fairness_batch = None

    def __init__(
        self,
        start_user_actor: Callable[[int], pykka.ActorRef],
        sockets_per_user: int,
        cluster: Cluster,
        grace_seconds: float,
        record_last_seen: Callable[[Sequence[tuple[int, int]]], None],
    ):
        """`record_last_seen(pairs)` stores (user id, ms) without waiting: the router never waits on the database."""
        super().__init__()
        self._start_user_actor = start_user_actor
        self._cluster = cluster
        self._sockets_per_user = sockets_per_user
        self._routes: dict[int, _Route] = {}
        self._grace_seconds = grace_seconds
        self._record_last_seen = record_last_seen
        # users whose last socket here closed less than a grace period ago: (ms of the close, the timer ending it)
        self._in_grace: dict[int, tuple[int, gevent.Greenlet]] = {}
        self._watched_by: dict[int, set[int]] = {}  # watched user -> users here watching it
        self._watching: dict[int, frozenset[int]] = {}  # user here -> the users it watches

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
            case PresenceUpdate(changes=changes, decided_here=decided_here):
                self._presence_changed(changes, decided_here)
            case WatchList(user_id=user_id, watched=watched):
                if user_id in self._routes:  # a list that comes after the route went is stale
                    self._set_watching(user_id, watched)
            case PresentAmong(user_ids=user_ids):
                return frozenset(u for u in user_ids if u in self._routes or u in self._in_grace)
            case GraceEnded(user_id=user_id, closed_at=closed_at):
                self._end_grace(user_id, closed_at)
            case RecordDepartures():
                now = int(time.time() * 1000)
                in_grace = [(user_id, closed_at) for user_id, (closed_at, _) in self._in_grace.items()]
                self._record_last_seen([*((user_id, now) for user_id in self._routes), *in_grace])
            case _:
                log.warning("router: unexpected message %r", message)
        return None

    def _attach(self, message: AttachSocket) -> pykka.ActorRef | None:
        """The user's actor, which now owns the socket; None if the user already has all the sockets allowed."""
        route = self._routes.get(message.user_id)
        if route is None or not route.actor.is_alive():
            if route is None:
                self._cluster.subscribe(message.user_id)
                self._arrive(message.user_id)
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
        self._set_watching(user_id, frozenset())
        self._leave(user_id)

    # ------------------------------------------------------------ presence

    def _arrive(self, user_id: int) -> None:
        """The user's first socket here: present, unless it is back within the grace period (a reload)."""
        grace = self._in_grace.pop(user_id, None)
        if grace is None:
            self._cluster.set_present([user_id])
        else:
            grace[1].kill(block=False)

    def _leave(self, user_id: int) -> None:
        """The user's last socket here closed: absent once the grace period ends without a new socket."""
        closed_at = int(time.time() * 1000)
        timer = gevent.spawn_later(self._grace_seconds, self._tell_self, GraceEnded(user_id, closed_at))
        self._in_grace[user_id] = (closed_at, timer)

    def _tell_self(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass  # stopping: a grace period that ends meanwhile no longer matters here

    def _end_grace(self, user_id: int, closed_at: int) -> None:
        grace = self._in_grace.get(user_id)
        if grace is not None and grace[0] == closed_at:  # not a grace period ended by a new socket
            del self._in_grace[user_id]
            self._cluster.set_absent([(user_id, closed_at)])

    def _presence_changed(self, changes: tuple[PresenceChange, ...], decided_here: bool) -> None:
        """Tell each change to the users here who watch its user, the frame encoded once for all of them."""
        if decided_here:
            absences = [(c.user_id, c.last_seen) for c in changes if not c.online and c.last_seen is not None]
            if absences:
                self._record_last_seen(absences)
        for change in changes:
            watchers = self._watched_by.get(change.user_id)
            if not watchers:
                continue
            entry = frames.presence_entry(change.user_id, change.online, change.last_seen)
            notice = WatchedPresence(change, frames.presence_frame([entry]))
            for watcher in list(watchers):
                self._forward(watcher, notice)

    def _set_watching(self, user_id: int, watched: frozenset[int]) -> None:
        """Replace the users `user_id` watches in the index (bounded by the UserActor: 200 per socket)."""
        before = self._watching.pop(user_id, frozenset())
        for gone in before - watched:
            watchers = self._watched_by[gone]
            watchers.discard(user_id)
            if not watchers:
                del self._watched_by[gone]
        for new in watched - before:
            self._watched_by.setdefault(new, set()).add(user_id)
        if watched:
            self._watching[user_id] = watched

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
