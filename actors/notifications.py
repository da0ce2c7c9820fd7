"""NotificationActor: who gets a notification, storing it, and having it pushed."""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any, Callable

import gevent
import pykka
from gevent import Greenlet
from gevent.event import AsyncResult
from gevent.pool import Pool
from prometheus_client import Counter

import metrics
from actors.messages import ConnectedAmong, Notify, NotifyResult, NotifyUsers
from actors.runtime import GeventActor
from protocol.notify import NotifyRequest, display_name, notification_text
from routing import Cluster, DeliverNotification
from storage import NotFound, Notification, NotificationDraft, Storage, StorageUnavailable

log = logging.getLogger(__name__)
ROUTER_TIMEOUT = 30.0
FOLLOWER_PAGE = 1000
OFFLINE_PAUSE = 1.0  # after a batch with offline recipients, pause this many times as long as it took
STOP_TIMEOUT = 5.0  # how long a stopping actor lets the fan-outs still running finish before it kills them


class NotificationActor(GeventActor):
    """Takes notify requests off the HTTP handlers and runs each as a fan-out job.

    A job resolves the recipients, stores their notifications in batches,
    those of connected recipients first, and after each batch commits has the
    router push that batch to whoever is online here, and the cluster backend
    to whoever is online on another node: the followers who are
    waiting hear of a post before the rows of the offline ones are written,
    and those rows are then written at a measured pace. Jobs run in a bounded
    pool of greenlets: a post by an author with 100,000 followers does not
    hold up a like, and chat keeps flowing meanwhile.
    """

    def __init__(
        self,
        storage: Storage,
        router: pykka.ActorRef,
        cluster: Cluster,
        now_ms: Callable[[], int],
        batch_size: int,
        concurrency: int,
        stop_timeout: float = STOP_TIMEOUT,
    ):
        super().__init__()
        self._storage = storage
        self._router = router
        self._cluster = cluster
        self._now_ms = now_ms
        self._batch_size = batch_size
        self._stop_timeout = stop_timeout
        self._jobs = Pool(concurrency)

    def on_receive(self, message: Any) -> None:
        match message:
            case Notify(request=request, reply=reply):
                self._jobs.spawn(self._run, request, reply)  # waits for a free slot: back-pressure
            case _:
                log.warning("notifications: unexpected message %r", message)

    def on_stop(self) -> None:
        """Let running fan-outs finish for `stop_timeout`, then kill the others: the notifications they stored
        stay stored, those they had not stored yet are never stored, and their callers get a 503."""
        if not self._jobs.join(timeout=self._stop_timeout):
            log.warning("notifications: %d fan-outs unfinished at stop; killing them", len(self._jobs))
            self._jobs.kill(block=False)

    def _run(self, request: NotifyRequest, reply: AsyncResult) -> None:
        started = time.monotonic()
        try:
            with metrics.fanouts_running.labels(request.kind).track_inprogress():
                result = self._fan_out(request)
            metrics.fanout_seconds.labels(request.kind).observe(time.monotonic() - started)
            metrics.fanout_recipients.labels(request.kind).observe(result.recipients)
            reply.set(result)
        except Exception as error:
            if not isinstance(error, NotFound):
                log.exception("notify %s for post %s failed", request.kind, request.post_id)
            reply.set_exception(error)
        except gevent.GreenletExit:  # killed by on_stop
            reply.set_exception(StorageUnavailable("the service stopped before every notification was stored"))
            raise

    def _fan_out(self, request: NotifyRequest) -> NotifyResult:
        recipients = self._recipients(request)
        actor_name = display_name(self._storage.username(request.actor_id), request.actor_id)
        text = notification_text(request.kind, actor_name)
        # connected recipients first: they are waiting on a socket, the others only need their row
        connected = self._router.ask(ConnectedAmong(tuple(recipients)), timeout=ROUTER_TIMEOUT)
        connected |= self._cluster.connected_among(u for u in recipients if u not in connected)
        waiting = [u for u in recipients if u in connected]
        offline = [u for u in recipients if u not in connected]
        drafts = partial(_drafts, request, text)
        store = partial(_store, self._storage, metrics.notifications_stored.labels(request.kind))
        size = self._batch_size
        online = 0
        # each batch of connected recipients is written while the one before it is pushed: the database's time
        # hides behind the pushes' CPU, and a batch is still pushed only once its rows are committed
        writing: Greenlet | None = None
        try:
            for start in range(0, len(waiting), size):
                written = writing
                writing = gevent.spawn(store, drafts(waiting[start : start + size], self._now_ms()))
                if written is not None:
                    online += self._push(written.get(), actor_name)
                    gevent.sleep(0)  # let sockets and chat run between batches
            if writing is not None:
                online += self._push(writing.get(), actor_name)
        finally:
            if writing is not None:
                writing.kill(block=False)  # this job failed or was killed: its next batch is not pushed either
        for start in range(0, len(offline), size):
            batch_started = time.monotonic()
            online += self._push(store(drafts(offline[start : start + size], self._now_ms())), actor_name)
            # the rest only need their rows: take at most half the time, so that chat keeps its latency
            gevent.sleep((time.monotonic() - batch_started) * OFFLINE_PAUSE)
        return NotifyResult(recipients=len(recipients), online=online)

    def _push(self, stored: list[Notification], actor_name: str) -> int:
        """Have stored notifications pushed here and on the other nodes; how many recipients were online."""
        # also reaches recipients who connected since; their earlier unread count includes it
        here = self._router.ask(NotifyUsers(tuple(stored), actor_name), timeout=ROUTER_TIMEOUT)
        elsewhere = self._cluster.publish_counted(
            (n.user_id, DeliverNotification(notification=n, actor_name=actor_name)) for n in stored
        )
        return len(here | elsewhere)

    def _recipients(self, request: NotifyRequest) -> list[int]:
        """The author's followers for a post; the post's owner for a comment or like; never the actor.

        The post must be in `posts` (404 otherwise), unless a comment or like names its owner (`postOwnerId`).
        """
        storage = self._storage
        owner = request.post_owner_id or storage.post_owner(request.post_id)
        if owner is None:
            raise NotFound(f"post {request.post_id} does not exist")
        if request.kind != "post":
            return [owner] if owner != request.actor_id else []
        followers: list[int] = []
        while True:
            page = storage.followers(request.actor_id, followers[-1] if followers else 0, FOLLOWER_PAGE)
            followers.extend(page)
            if len(page) < FOLLOWER_PAGE:
                return followers


def _store(storage: Storage, stored: Counter, drafts: list[NotificationDraft]) -> list[Notification]:
    """Store one batch and count it as the fan-out's progress."""
    notifications = storage.store_notifications(drafts)
    stored.inc(len(notifications))
    return notifications


def _drafts(request: NotifyRequest, text: str, user_ids: list[int], created_at: int) -> list[NotificationDraft]:
    return [
        NotificationDraft(
            user_id=user_id,
            type=request.kind,
            actor_id=request.actor_id,
            post_id=request.post_id,
            comment_id=request.comment_id,
            text=text,
            created_at=created_at,
        )
        for user_id in user_ids
    ]
