"""RedisCluster: nodes joined through Redis pub/sub, one channel per user.

Two greenlets own the two long-lived Redis connections, so no connection is
ever used by two greenlets at once (other calls take their own from the pool):

- the subscriber holds the pub/sub connection. Between reads it applies the
  subscription changes the router asked for (a change also publishes a
  wake-up to the node's own channel, so an idle subscriber does not poll),
  and it hands every payload another node published to `deliver`. When the connection fails it marks
  the node degraded, reconnects with capped, jittered exponential backoff,
  and subscribes again to every user connected here;
- the publisher empties the outbox into pipelines of PUBLISH, in order.
  While Redis is down it drops what it is given: the rows are in the
  database, and recipients on other nodes get them when they reconnect.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from typing import Any, Iterable, Sequence

import gevent
import redis
from gevent.event import Event
from redis.backoff import NoBackoff
from redis.retry import Retry

import metrics
from cluster import redis_presence
from cluster.envelope import EnvelopeError, decode, encode, origin_prefix
from cluster.redis_presence import RedisPresence
from routing import Deliver, PresenceChanged, Rejoined, UserPayload

log = logging.getLogger(__name__)
CHANNEL_PREFIX = "realtime:user:"
IDLE_READ_SECONDS = 1.0  # the subscriber's longest read: subscription changes whose wake-up was lost wait this long
PUBLISH_BATCH = 1000  # PUBLISH commands per pipeline
NUMSUB_BATCH = 1000  # channels per PUBSUB NUMSUB
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0
HEALTH_CHECK_SECONDS = 5  # a pub/sub connection silent this long is pinged, so a dead peer is noticed
RECONNECT_FIRST, RECONNECT_MAX = 0.1, 5.0  # seconds between reconnection attempts, doubling
PRESENCE_CHANNEL = redis_presence.CHANNEL.encode()
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


def channel_of(user_id: int) -> str:
    return f"{CHANNEL_PREFIX}{user_id}"


def user_of(channel: bytes | str) -> int | None:
    """The user id of a user channel, or None for any other channel."""
    name = channel.decode() if isinstance(channel, bytes) else channel
    if not name.startswith(CHANNEL_PREFIX):
        return None
    try:
        return int(name[len(CHANNEL_PREFIX):])
    except ValueError:
        return None


class RedisCluster:
    """The Redis backend of `cluster.Cluster`."""

    def __init__(self, url: str, node_name: str, instance: str, presence_ttl_seconds: float):
        self.node_name = node_name
        self._instance = instance
        self._own_prefix = origin_prefix(instance)  # what this process publishes comes back on its channels
        options = dict(
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 0),  # the greenlets below retry, with backoff
        )
        self._publisher_client = redis.Redis.from_url(url, **options)
        self._pubsub = redis.Redis.from_url(url, health_check_interval=HEALTH_CHECK_SECONDS, **options).pubsub()
        self._node_channel = f"realtime:node:{instance}"  # keeps the pub/sub connection open with no user here
        self._wanted: set[int] = set()  # users with a socket here
        self._changes: dict[int, bool] = {}  # user -> subscribe (True) or unsubscribe, not yet sent
        self._wake_pending = False
        self._confirmed: dict[int, Event] = {}  # user -> set once Redis confirmed the subscription
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._outbox_ready = Event()
        self._up = False
        self._outage_reported = False
        self._deliver: Deliver | None = None
        self._rejoined: Rejoined | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._presence = RedisPresence(self._publisher_client, instance, presence_ttl_seconds, lambda: self._up)

    # ------------------------------------------------------------ Cluster

    def start(self, deliver: Deliver, rejoined: Rejoined, presence_changed: PresenceChanged) -> None:
        self._deliver, self._rejoined = deliver, rejoined
        self._greenlets = [
            gevent.spawn(self._subscriber),
            gevent.spawn(self._publisher),
            self._presence.start(presence_changed),
        ]

    def subscribe(self, user_id: int) -> None:
        self._wanted.add(user_id)
        self._changes[user_id] = True
        self._confirmed.setdefault(user_id, Event())
        self._wake_subscriber()

    def unsubscribe(self, user_id: int) -> None:
        self._wanted.discard(user_id)
        self._changes[user_id] = False
        self._confirmed.pop(user_id, None)
        self._wake_subscriber()

    def wait_subscribed(self, user_id: int, timeout: float) -> bool:
        confirmed = self._confirmed.get(user_id)
        return self._up and confirmed is not None and confirmed.wait(timeout)

    def publish(self, user_id: int, payload: UserPayload) -> None:
        if not self._up:
            metrics.cluster_pushes.count("dropped")
            return
        self._outbox.append((channel_of(user_id), encode(self._instance, payload)))
        self._outbox_ready.set()

    def publish_counted(self, deliveries: Iterable[tuple[int, UserPayload]]) -> set[int]:
        """Publish only for the users another node holds at this moment (asked with PUBSUB NUMSUB): the offline
        followers of a post cost no PUBLISH. One who connects after the count gets the stored row on connect."""
        deliveries = list(deliveries)
        if not self._up:
            metrics.cluster_pushes.count("dropped", len(deliveries))
            return set()
        reached: set[int] = set()
        try:
            for start in range(0, len(deliveries), PUBLISH_BATCH):
                batch = deliveries[start : start + PUBLISH_BATCH]
                counts = self._publisher_client.pubsub_numsub(*(channel_of(user_id) for user_id, _ in batch))
                elsewhere = [item for item, (_, count) in zip(batch, counts) if self._held_elsewhere(item[0], count)]
                if not elsewhere:
                    continue
                receivers = self._publish_all(
                    [(channel_of(user_id), encode(self._instance, payload)) for user_id, payload in elsewhere]
                )
                metrics.cluster_pushes.count("published", len(elsewhere))
                reached.update(
                    user_id for (user_id, _), count in zip(elsewhere, receivers) if self._held_elsewhere(user_id, count)
                )
        except REDIS_ERRORS as error:
            log.warning("cluster: could not publish notifications to other nodes: %s", error)
        return reached

    def _held_elsewhere(self, user_id: int, subscribers: int) -> bool:
        """Whether another node holds the user, given the subscribers of its channel: this node is one of them
        while the user has a socket here."""
        return subscribers - (user_id in self._wanted) > 0

    def connected_among(self, user_ids: Iterable[int]) -> set[int]:
        if not self._up:
            return set()
        users = list(user_ids)
        connected: set[int] = set()
        try:
            for start in range(0, len(users), NUMSUB_BATCH):
                counts = self._publisher_client.pubsub_numsub(*map(channel_of, users[start : start + NUMSUB_BATCH]))
                connected.update(user_of(channel) for channel, count in counts if count)
        except REDIS_ERRORS as error:
            log.warning("cluster: could not ask Redis who is connected: %s", error)
        return connected

    def set_present(self, user_ids: Sequence[int]) -> None:
        self._presence.set_present(user_ids)

    def set_absent(self, absences: Sequence[tuple[int, int]]) -> None:
        self._presence.set_absent(absences)

    def present_among(self, user_ids: Iterable[int]) -> set[int]:
        return self._presence.present_among(user_ids)

    def status(self) -> str:
        return "ok" if self._up else "degraded"

    def close(self) -> None:
        gevent.killall(self._greenlets, block=True, timeout=2)
        self._pubsub.close()
        self._publisher_client.close()

    # ------------------------------------------------------------ subscriber

    def _subscriber(self) -> None:
        delay = RECONNECT_FIRST
        while True:
            try:
                self._resubscribe()
                self._set_up(True)
                delay = RECONNECT_FIRST
                while True:
                    self._apply_changes()
                    message = self._pubsub.get_message(timeout=IDLE_READ_SECONDS)
                    if message is not None:
                        self._on_message(message)
            except REDIS_ERRORS as error:
                self._set_up(False, error)
                self._pubsub.reset()
                gevent.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, RECONNECT_MAX)

    def _resubscribe(self) -> None:
        """Connect, and subscribe to this node's channel and every connected user's."""
        self._changes.clear()
        channels = [self._node_channel, redis_presence.CHANNEL, *map(channel_of, self._wanted)]
        for start in range(0, len(channels), NUMSUB_BATCH):
            self._pubsub.subscribe(*channels[start : start + NUMSUB_BATCH])

    def _wake_subscriber(self) -> None:
        """Have the subscriber's read return, through Redis, so that it applies the changes soon.

        While Redis is down there is no one to wake: reconnecting subscribes to every wanted user."""
        if self._up and not self._wake_pending:
            self._wake_pending = True
            gevent.spawn(self._send_wake_up)

    def _send_wake_up(self) -> None:
        try:
            self._publisher_client.publish(self._node_channel, b"apply subscription changes")
        except REDIS_ERRORS:
            pass  # the subscriber's read ends within IDLE_READ_SECONDS anyway

    def _apply_changes(self) -> None:
        self._wake_pending = False
        if not self._changes:
            return
        changes, self._changes = self._changes, {}
        added = [channel_of(user_id) for user_id, on in changes.items() if on]
        removed = [channel_of(user_id) for user_id, on in changes.items() if not on]
        if removed:
            self._pubsub.unsubscribe(*removed)
        if added:
            self._pubsub.subscribe(*added)

    def _on_message(self, message: dict[str, Any]) -> None:
        if message["channel"] == PRESENCE_CHANNEL:
            if message["type"] == "message":
                self._presence.on_message(message["data"])
            return
        user_id = user_of(message["channel"])
        if user_id is None:
            return
        if message["type"] == "subscribe":
            confirmed = self._confirmed.get(user_id)
            if confirmed is not None:
                confirmed.set()
            return
        if message["type"] != "message" or message["data"].startswith(self._own_prefix):
            return
        try:
            _, payload = decode(message["data"])
        except EnvelopeError as error:
            metrics.cluster_pushes.count("malformed")
            log.warning("cluster: dropped a push for user %s: %s", user_id, error)
            return
        metrics.cluster_pushes.count("received")
        self._deliver(user_id, payload)

    def _set_up(self, up: bool, error: Exception | None = None) -> None:
        """Log each change once: connected, or unreachable (and then, until it is back, only at debug level)."""
        if up and not self._up:
            log.info("cluster: connected to Redis as node %s, %d users subscribed", self.node_name, len(self._wanted))
            self._presence.reconnected()
            if self._outage_reported:
                self._rejoined()
            self._outage_reported = False
        elif not up and not self._outage_reported:
            log.error("cluster: cannot reach Redis (%s); serving this node's users only, reconnecting", error)
            self._outage_reported = True
        elif not up:
            log.debug("cluster: Redis still unreachable: %s", error)
        self._up = up
        if not up:
            for confirmed in self._confirmed.values():
                confirmed.clear()

    # ------------------------------------------------------------ publisher

    def _publisher(self) -> None:
        while True:
            self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(PUBLISH_BATCH, len(self._outbox)))]
                if not self._up:
                    metrics.cluster_pushes.count("dropped", len(batch))
                    continue
                try:
                    self._publish_all(batch)
                except REDIS_ERRORS as error:
                    log.warning("cluster: %d pushes to other nodes lost: %s", len(batch), error)
                    outcome = "dropped"
                else:
                    outcome = "published"
                metrics.cluster_pushes.count(outcome, len(batch))

    def _publish_all(self, publications: list[tuple[str, bytes]]) -> list[int]:
        """PUBLISH each (channel, data) in one pipeline, in order; the number of subscribers each reached."""
        pipeline = self._publisher_client.pipeline(transaction=False)
        for channel, data in publications:
            pipeline.publish(channel, data)
        return pipeline.execute()
