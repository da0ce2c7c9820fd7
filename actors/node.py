"""Node: the actor system of one service process and what its actors share."""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import pykka

from actors.messages import CloseAll, PushFrame, ToUser
from actors.router import Broadcast, ConnectedCount, RouterActor
from protocol import frames
from protocol.frames import CloseCode, Limits
from storage import Delivery, Storage
from storage.batching import WriteBatcher

log = logging.getLogger(__name__)


class Node:
    """Starts the RouterActor and the group-commit writers; every UserActor gets this object.

    Holds no mutable state of its own that actors share: the router owns the
    routing table, each writer owns its queue.
    """

    def __init__(self, storage: Storage, limits: Limits, auth_secret: str, write_batch: int, write_lanes: int):
        """Messages are written in `write_lanes` pipelines keyed by sender, so one sender's stay in order."""
        self.storage = storage
        self.limits = limits
        self.auth_secret = auth_secret
        self.message_writer = WriteBatcher("messages", storage.store_messages, write_batch, write_lanes)
        self.delivery_writer = WriteBatcher("deliveries", self._store_deliveries, write_batch, write_lanes)
        self.router = RouterActor.start(self._start_user_actor)

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def connected_count(self, timeout: float = 5) -> tuple[int, int]:
        """(users, sockets) connected to this node."""
        return self.router.ask(ConnectedCount(), timeout=timeout)

    def mark_delivered(self, message_id: int) -> None:
        """A message reached a socket of its recipient: store that, then tell its sender."""
        self.delivery_writer.submit(message_id, self._announce_delivery, key=message_id)

    def shutdown(self, timeout: float) -> None:
        """Store what was accepted, close every socket with 1001, stop the actors."""
        deadline = time.monotonic() + timeout
        if not self.message_writer.close(timeout):
            log.error("shutdown: messages still unstored after %.1f s", timeout)
        self.router.tell(Broadcast(CloseAll(CloseCode.GOING_AWAY, "server shutting down")))
        self.delivery_writer.close(max(0.1, deadline - time.monotonic()))
        pykka.ActorRegistry.stop_all(block=True, timeout=max(0.1, deadline - time.monotonic()))

    def _start_user_actor(self, user_id: int) -> pykka.ActorRef:
        from actors.user import UserActor

        return UserActor.start(user_id, self)

    def _store_deliveries(self, message_ids: Sequence[int]) -> list[Delivery | None]:
        moved = self.storage.mark_delivered(sorted(set(message_ids)), self.now_ms())
        # a message written to two sockets may be queued twice; only its first entry announces it
        return [moved.pop(message_id, None) for message_id in message_ids]

    def _announce_delivery(self, outcome: Any) -> None:
        if isinstance(outcome, Delivery):
            frame = frames.message_delivered_frame(outcome.message_id, outcome.client_msg_id, outcome.delivered_at)
            self.router.tell(ToUser(outcome.sender_id, PushFrame(frame)))
        elif isinstance(outcome, Exception):
            log.warning("delivery not recorded (the message will be delivered again on reconnect): %s", outcome)
