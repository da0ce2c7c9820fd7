"""Node: starts and stops the actor system of one service process, and builds what its actors share."""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import pykka

import metrics
from actors.messages import (
    Broadcast,
    CatchUp,
    CloseAll,
    ConnectedCount,
    FromCluster,
    PresenceUpdate,
    RecordDepartures,
    ToUser,
)
from actors.notifications import NotificationActor
from actors.rate_limit import SendLimiters, SendRates
from actors.router import RouterActor
from actors.user import UserActor, UserContext
from protocol import frames
from protocol.frames import CloseCode, Limits
from routing import Cluster, PushFrame
from settings import Settings
from storage import Delivery, Message, Storage
from storage.batching import Batcher, BatcherClosed

log = logging.getLogger(__name__)


def limits_of(settings: Settings) -> Limits:
    """The frame limits of `[limits]`."""
    limits = settings.limits
    return Limits(
        max_content_chars=limits.max_content_chars,
        history_page=limits.history_page,
        history_page_max=limits.history_page_max,
        notifications_page=limits.notifications_page,
        notifications_page_max=limits.notifications_page_max,
    )


def send_rates_of(settings: Settings) -> SendRates:
    """How fast one user may send, from `[limits]`."""
    limits = settings.limits
    return SendRates(
        frames_per_second=limits.frames_per_second,
        frame_burst=limits.frame_burst,
        messages_per_second=limits.messages_per_second,
        message_burst=limits.message_burst,
        content_bytes_per_second=limits.content_bytes_per_second,
        content_bytes_burst=limits.content_bytes_burst,
        strikes=limits.rate_limit_strikes,
    )


class Node:
    """Starts the router, the notifier and the group-commit writers, and the cluster backend it is given.

    Actors get only what they use (`UserContext`, the notifier's arguments),
    never the node. Holds no mutable state of its own that actors share: the
    router owns the routing table, each writer owns its queue.
    """

    def __init__(self, storage: Storage, settings: Settings, cluster: Cluster):
        """Messages are written in the engine's `write_lanes` pipelines keyed by sender: one sender's stay in order."""
        self.storage = storage
        self.limits = limits_of(settings)
        batch, lanes = settings.limits.write_batch, storage.engine.write_lanes
        self.message_writer = Batcher("messages", storage.store_messages, batch, lanes)
        self.delivery_writer = Batcher("deliveries", self._store_deliveries, batch, lanes)
        self.summary_reader = Batcher("connect summaries", storage.connect_summaries, batch, lanes)
        # one lane: a `watch` answer waits for every lastSeen queued before it (`wait_committed`)
        self.last_seen_writer = Batcher("last seen", self._store_last_seen, batch)
        self.cluster = cluster
        self.router = RouterActor.start(
            self._start_user_actor,
            settings.limits.sockets_per_user,
            cluster,
            settings.presence.grace_seconds,
            self._record_last_seen,
        )
        # read by _start_user_actor, which the router calls only for an attach, once this node is built
        self._users = UserContext(
            storage=storage,
            router=self.router,
            cluster=cluster,
            message_writer=self.message_writer,
            delivery_writer=self.delivery_writer,
            summary_reader=self.summary_reader,
            last_seen_writer=self.last_seen_writer,
            mark_delivered=self.mark_delivered,
            send_limiters=SendLimiters(send_rates_of(settings)),  # the user actors', as they start and stop
            limits=self.limits,
            auth_secret=settings.auth.secret,
            like_group_seconds=settings.notify.like_group_seconds,
            now_ms=self.now_ms,
        )
        cluster.start(
            lambda user_id, payload: self.router.tell(FromCluster(user_id, payload)),
            lambda: self.router.tell(Broadcast(CatchUp())),
            lambda changes, decided_here: self.router.tell(PresenceUpdate(tuple(changes), decided_here)),
        )
        self.notifier = NotificationActor.start(
            storage,
            self.router,
            cluster,
            self.now_ms,
            batch_size=settings.notify.fanout_batch,
            concurrency=settings.notify.fanout_concurrency,
        )

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def mailbox_depths(self) -> dict[str, int]:
        """Messages waiting in the router's and the notifier's mailboxes, and in the fullest user actor's."""
        user_actors = [ref.actor_inbox.qsize() for ref in pykka.ActorRegistry.get_by_class(UserActor)]
        return {
            "router": self.router.actor_inbox.qsize(),
            "notifications": self.notifier.actor_inbox.qsize(),
            "user_max": max(user_actors, default=0),
            "user_total": sum(user_actors),
        }

    def connected_count(self, timeout: float = 5) -> tuple[int, int]:
        """(users, sockets) connected to this node."""
        return self.router.ask(ConnectedCount(), timeout=timeout)

    def mark_delivered(self, message: Message, recipient_id: int) -> None:
        """A message reached a socket of its recipient: store that, then tell its sender.

        Marks are queued by recipient, so `delivery_writer.wait_committed(recipient_id)` covers all of theirs.
        """
        metrics.message_delivery_seconds.observe(max(0, self.now_ms() - message.created_at) / 1000)
        try:
            self.delivery_writer.submit(message, self._announce_delivery, key=recipient_id)
        except BatcherClosed:  # written while shutting down: it stays undelivered and comes again on reconnect
            log.debug("delivery of message %s not recorded: shutting down", message.id)

    def shutdown(self, timeout: float) -> None:
        """Store what was accepted, close every socket with 1001, stop the actors."""
        deadline = time.monotonic() + timeout
        if not self.message_writer.close(timeout):
            log.error("shutdown: messages still unstored after %.1f s", timeout)
        self.router.tell(Broadcast(CloseAll(CloseCode.GOING_AWAY, "server shutting down")))
        self.delivery_writer.close(max(0.1, deadline - time.monotonic()))
        self.summary_reader.close(0.1)
        try:
            self.router.ask(RecordDepartures(), timeout=max(0.1, deadline - time.monotonic()))
        except pykka.Timeout:
            log.warning("shutdown: lastSeen of the users still here not recorded")
        self.last_seen_writer.close(max(0.1, deadline - time.monotonic()))
        pykka.ActorRegistry.stop_all(block=True, timeout=max(0.1, deadline - time.monotonic()))
        self.cluster.close()

    def _start_user_actor(self, user_id: int) -> pykka.ActorRef:
        return UserActor.start(user_id, self._users)

    def _store_deliveries(self, messages: Sequence[Message]) -> list[Delivery | None]:
        moved = self.storage.mark_delivered(messages, self.now_ms())
        # a message written to two sockets may be queued twice; only its first entry announces it
        return [moved.pop(message.id, None) for message in messages]

    def _record_last_seen(self, absences: Sequence[tuple[int, int]]) -> None:
        """Queue (user id, ms of its last close) for storage; never waits (the router calls it)."""
        for user_id, closed_at in absences:
            try:
                self.last_seen_writer.submit((user_id, closed_at), _log_unrecorded_last_seen)
            except BatcherClosed:
                log.debug("lastSeen of user %s not recorded: shutting down", user_id)
                return

    def _store_last_seen(self, absences: Sequence[tuple[int, int]]) -> list[None]:
        self.storage.record_last_seen(absences)
        return [None] * len(absences)

    def _announce_delivery(self, outcome: Any) -> None:
        if isinstance(outcome, Delivery):
            frame = frames.message_delivered_frame(outcome.message_id, outcome.client_msg_id, outcome.delivered_at)
            self.router.tell(ToUser(outcome.sender_id, PushFrame(frame)))
        elif isinstance(outcome, Exception):
            log.warning("delivery not recorded (the message will be delivered again on reconnect): %s", outcome)


def _log_unrecorded_last_seen(outcome: Any) -> None:
    if isinstance(outcome, Exception):
        log.warning("lastSeen not recorded (shown as unknown until the user's next close): %s", outcome)
