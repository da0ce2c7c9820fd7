"""NotificationActor: who gets a notification, storing it, and having it pushed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import AsyncResult
from gevent.pool import Pool

from actors.messages import NotifyUsers
from actors.runtime import GeventActor
from protocol.notify import NotifyRequest, display_name, notification_text
from storage import NotFound, NotificationDraft

if TYPE_CHECKING:
    from actors.node import Node

log = logging.getLogger(__name__)
ROUTER_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Notify:
    """Handle a notify API request; `reply` gets a `NotifyResult`, or the exception that stopped it."""

    request: NotifyRequest
    reply: AsyncResult


@dataclass(frozen=True, slots=True)
class NotifyResult:
    recipients: int  # notifications stored
    online: int  # of those, recipients connected to this node when theirs was stored


class NotificationActor(GeventActor):
    """Takes notify requests off the HTTP handlers and runs each as a fan-out job.

    A job resolves the recipients, stores their notifications in batches and,
    after each batch commits, has the router push that batch to whoever is
    online, so the first followers hear of a post while later batches are
    still being stored. Jobs run in a bounded pool of greenlets: a post by an
    author with 100,000 followers does not hold up a like, and the database
    calls yield, so chat keeps flowing meanwhile.
    """

    def __init__(self, node: Node, batch_size: int, concurrency: int):
        super().__init__()
        self._node = node
        self._batch_size = batch_size
        self._jobs = Pool(concurrency)

    def on_receive(self, message: Any) -> None:
        match message:
            case Notify(request=request, reply=reply):
                self._jobs.spawn(self._run, request, reply)  # waits for a free slot: back-pressure
            case _:
                log.warning("notifications: unexpected message %r", message)

    def on_stop(self) -> None:
        self._jobs.join()

    def _run(self, request: NotifyRequest, reply: AsyncResult) -> None:
        try:
            reply.set(self._fan_out(request))
        except Exception as error:
            if not isinstance(error, NotFound):
                log.exception("notify %s for post %s failed", request.kind, request.post_id)
            reply.set_exception(error)

    def _fan_out(self, request: NotifyRequest) -> NotifyResult:
        storage = self._node.storage
        if request.kind == "post":
            pages = self._follower_pages(request.actor_id)
        else:
            owner = request.post_owner_id or storage.post_owner(request.post_id)
            if owner is None:
                raise NotFound(f"post {request.post_id} does not exist")
            pages = iter([[owner]] if owner != request.actor_id else [])
        actor_name = display_name(storage.username(request.actor_id), request.actor_id)
        text = notification_text(request.kind, actor_name)
        recipients = online = 0
        for page in pages:
            created_at = self._node.now_ms()
            stored = storage.store_notifications(
                [
                    NotificationDraft(
                        user_id, request.kind, request.actor_id, request.post_id, request.comment_id, text, created_at
                    )
                    for user_id in page
                ]
            )
            recipients += len(stored)
            online += self._node.router.ask(NotifyUsers(tuple(stored), actor_name), timeout=ROUTER_TIMEOUT)
            gevent.sleep(0)  # let sockets and chat run between batches
        return NotifyResult(recipients, online)

    def _follower_pages(self, author_id: int):
        after_id = 0
        while True:
            page = self._node.storage.followers(author_id, after_id, self._batch_size)
            if page:
                yield page
            if len(page) < self._batch_size:
                return
            after_id = page[-1]
