"""The actors in this process: RouterActor, UserActor and NotificationActor on a `Node`, with SQLite on a temporary
path, the local cluster, and fake sockets that record what the actors write. No server process, no
monkey-patching: the actors' futures wait on gevent's hub, and every wait below is on an event, with a timeout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pykka
import pytest
from gevent.event import AsyncResult, Event

from actors import Node, UserActor
from actors.messages import (
    AttachSocket,
    CatchUp,
    ClientFrame,
    ConnectedAmong,
    ConnectedCount,
    DetachSocket,
    Notify,
    NotifyResult,
    ToUser,
)
from actors.notifications import NotificationActor
from actors.runtime import GeventActor
from cluster import LocalCluster
from protocol.frames import CloseCode
from protocol.notify import NotifyRequest
from routing import DeliverNotification
from settings import Settings
from storage import BACKLOG_PAGE, MessageDraft, NotificationDraft, Storage, StorageUnavailable, open_storage
from tests.helpers.actors import TIMEOUT, FakeTransport, connect, send, unit_settings

LIKE_WINDOW = 0.2  # [notify] like_group_seconds here
SOCKETS_PER_USER = 2
ANN, BOB, CAROL, DAVE, ERIN, FRED = 1, 2, 3, 4, 5, 6
POST = 900


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return unit_settings(
        tmp_path,
        REALTIME_NOTIFY_LIKE_GROUP_SECONDS=str(LIKE_WINDOW),
        REALTIME_NOTIFY_FANOUT_BATCH="2",  # several batches for a handful of followers
        REALTIME_LIMITS_SOCKETS_PER_USER=str(SOCKETS_PER_USER),
    )


@pytest.fixture
def storage(settings: Settings) -> Iterator[Storage]:
    storage = open_storage(settings.database)
    storage.prepare()
    storage.add_users([(ANN, "ann"), (BOB, "bob"), (CAROL, "carol"), (DAVE, "dave"), (ERIN, "erin"), (FRED, "fred")])
    yield storage
    storage.close()


@pytest.fixture
def node(storage: Storage, settings: Settings) -> Iterator[Node]:
    node = Node(storage, settings, LocalCluster("unit"))
    yield node
    node.shutdown(TIMEOUT)


def draft(sender_id: int, recipient_id: int, content: str) -> MessageDraft:
    return MessageDraft(
        sender_id=sender_id, recipient_id=recipient_id, content=content, client_msg_id=None, created_at=1
    )


# ------------------------------------------------------------ RouterActor: attach and detach


def test_the_router_starts_one_user_actor_per_user_and_hands_it_each_of_the_users_sockets(node: Node) -> None:
    ann, ann_first = connect(node, ANN)
    ann_again, ann_second = connect(node, ANN)
    bob, bob_socket = connect(node, BOB)

    assert ann_again.actor_urn == ann.actor_urn
    assert bob.actor_urn != ann.actor_urn
    assert ann.actor_class is UserActor and bob.actor_class is UserActor
    for socket, user_id in ((ann_first, ANN), (ann_second, ANN), (bob_socket, BOB)):
        socket.expect("connected", userId=user_id, unreadMessages=0, unreadNotifications=0)
    assert node.router.ask(ConnectedCount(), timeout=TIMEOUT) == (2, 3)


def test_the_users_actor_stops_after_its_last_socket_and_a_new_socket_gets_a_new_actor(node: Node) -> None:
    ann, first = connect(node, ANN)
    _, second = connect(node, ANN)

    node.router.tell(DetachSocket(ANN, first))
    assert node.router.ask(ConnectedCount(), timeout=TIMEOUT) == (1, 1)
    assert ann.ask(CatchUp(), timeout=TIMEOUT) is None  # still running for the other socket

    node.router.tell(DetachSocket(ANN, second))
    assert node.router.ask(ConnectedCount(), timeout=TIMEOUT) == (0, 0)
    with pytest.raises(pykka.ActorDeadError):  # its stop was queued before this, so this is never handled
        ann.ask(CatchUp(), timeout=TIMEOUT)

    again, _ = connect(node, ANN)
    assert again.actor_urn != ann.actor_urn and again.is_alive()


def test_a_socket_beyond_sockets_per_user_is_refused_and_the_others_stay(node: Node) -> None:
    for _ in range(SOCKETS_PER_USER):
        connect(node, ANN)

    assert node.router.ask(AttachSocket(ANN, FakeTransport()), timeout=TIMEOUT) is None
    assert node.router.ask(ConnectedCount(), timeout=TIMEOUT) == (1, SOCKETS_PER_USER)


def test_a_socket_detached_twice_or_never_attached_changes_nothing(node: Node) -> None:
    _, first = connect(node, ANN)
    _, second = connect(node, ANN)
    node.router.tell(DetachSocket(ANN, first))
    node.router.tell(DetachSocket(ANN, first))
    node.router.tell(DetachSocket(BOB, FakeTransport()))
    assert node.router.ask(ConnectedCount(), timeout=TIMEOUT) == (1, 1)


# ------------------------------------------------------------ UserActor: chat


def test_messages_from_one_sender_are_acknowledged_and_delivered_in_the_order_sent(node: Node) -> None:
    ann, ann_socket = connect(node, ANN)
    _, bob_socket = connect(node, BOB)
    ann_socket.expect("connected")
    bob_socket.expect("connected")

    for n in range(30):
        send(ann, ann_socket, type="message", to=BOB, content=f"m{n}", clientMsgId=f"c{n}")

    sent = [ann_socket.expect("message_sent", clientMsgId=f"c{n}", to=BOB)["messageId"] for n in range(30)]
    received = [bob_socket.expect("message", content=f"m{n}", clientMsgId=f"c{n}", **{"from": ANN}) for n in range(30)]
    assert sent == sorted(sent) and len(set(sent)) == 30
    assert [frame["messageId"] for frame in received] == sent


def test_a_message_written_to_the_recipients_socket_is_receipted_to_the_sender(node: Node, storage: Storage) -> None:
    ann, ann_socket = connect(node, ANN)
    _, bob_socket = connect(node, BOB)
    ann_socket.expect("connected")
    bob_socket.expect("connected")

    send(ann, ann_socket, type="message", to=BOB, content="hi", clientMsgId="c-1")

    message_id = ann_socket.expect("message_sent", clientMsgId="c-1")["messageId"]
    bob_socket.expect("message", messageId=message_id)
    ann_socket.expect("message_delivered", messageId=message_id, clientMsgId="c-1")
    assert [m.status for m in storage.history(ANN, BOB, None, 10)] == ["delivered"]


def test_a_message_to_a_recipient_who_connects_later_is_receipted_when_it_reaches_the_socket(node: Node) -> None:
    ann, ann_socket = connect(node, ANN)
    ann_socket.expect("connected")
    send(ann, ann_socket, type="message", to=BOB, content="while you were out", clientMsgId="c-1")
    message_id = ann_socket.expect("message_sent", clientMsgId="c-1")["messageId"]

    _, bob_socket = connect(node, BOB)

    bob_socket.expect("connected", unreadMessages=1)
    bob_socket.expect("message", messageId=message_id, content="while you were out")
    ann_socket.expect("message_delivered", messageId=message_id, clientMsgId="c-1")


def test_a_backlog_longer_than_a_page_is_sent_a_page_at_a_time_as_the_socket_makes_room(
    node: Node, storage: Storage
) -> None:
    stored = storage.store_messages([draft(ANN, BOB, f"m{n}") for n in range(BACKLOG_PAGE + 20)])
    room = Event()
    bob_socket = FakeTransport(room)

    connect(node, BOB, bob_socket)

    bob_socket.expect("connected", unreadMessages=BACKLOG_PAGE + 20)
    assert bob_socket.waiting_for_room.wait(TIMEOUT)
    assert len(bob_socket.frames) == 1 + BACKLOG_PAGE  # the first page only, until the socket has room
    room.set()
    pushed = [bob_socket.expect("message")["messageId"] for _ in range(BACKLOG_PAGE + 20)]
    assert pushed == [result.message.id for result in stored]  # oldest first, each once


def test_a_socket_that_makes_no_room_for_the_rest_of_its_backlog_is_closed_try_again_later(
    node: Node, storage: Storage
) -> None:
    storage.store_messages([draft(ANN, BOB, f"m{n}") for n in range(BACKLOG_PAGE + 1)])
    bob_socket = FakeTransport(room=False)

    connect(node, BOB, bob_socket)

    assert bob_socket.wait_closed() == CloseCode.TRY_AGAIN_LATER
    assert sum(frame["type"] == "message" for frame in bob_socket.frames) == BACKLOG_PAGE


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("not json", {}),
        ("[1, 2]", {}),
        ('{"type": 5}', {}),
        ('{"type": "telepathy"}', {"type": "telepathy"}),
        (
            '{"type": "message", "to": "bob", "content": "x", "clientMsgId": "c-1"}',
            {"type": "message", "clientMsgId": "c-1"},
        ),
        ('{"type": "message", "to": 2, "content": ""}', {"type": "message"}),
        ('{"type": "history"}', {"type": "history"}),
    ],
    ids=["not-json", "not-an-object", "type-not-a-string", "unknown-type", "bad-to", "empty-content", "no-with"],
)
def test_a_bad_frame_is_answered_bad_request_and_the_socket_stays_usable(
    node: Node, text: str, ref: dict[str, Any]
) -> None:
    ann, ann_socket = connect(node, ANN)
    ann_socket.expect("connected")

    ann.tell(ClientFrame(ann_socket, text))
    send(ann, ann_socket, type="ping")

    error = ann_socket.expect("error", code="bad_request")
    assert error["ref"] == ref and error["message"]
    ann_socket.expect("pong")
    assert not ann_socket.closing


def test_a_message_to_an_unknown_user_is_answered_not_found_with_its_client_msg_id(node: Node) -> None:
    ann, ann_socket = connect(node, ANN)
    ann_socket.expect("connected")

    send(ann, ann_socket, type="message", to=404, content="anyone?", clientMsgId="c-9")

    ann_socket.expect("error", code="not_found", ref={"type": "message", "clientMsgId": "c-9"})


# ------------------------------------------------------------ UserActor: likes


def test_likes_of_one_post_within_the_window_are_pushed_as_one_grouped_frame(node: Node, storage: Storage) -> None:
    _, bob_socket = connect(node, BOB)
    bob_socket.expect("connected")
    likes = storage.store_notifications(
        [
            NotificationDraft(
                user_id=BOB, type="like", actor_id=actor_id, post_id=POST, comment_id=None, text="liked", created_at=1
            )
            for actor_id in (CAROL, DAVE, ERIN)
        ]
    )

    for like, name in zip(likes, ("carol", "dave", "erin")):
        node.router.tell(ToUser(BOB, DeliverNotification(notification=like, actor_name=name)))

    first = bob_socket.expect("notification", notificationId=likes[0].id, notificationType="like", actorId=CAROL)
    assert "actorIds" not in first  # the first like of a post is pushed at once
    grouped = bob_socket.expect("notification", notificationId=likes[2].id, postId=POST, actorIds=[ERIN, DAVE])
    assert grouped["count"] == 2 and grouped["text"] == "erin and 1 other liked your post"
    assert len(bob_socket.frames) == 3  # connected, the first like, the group


# ------------------------------------------------------------ NotificationActor


def notify(node: Node, request: NotifyRequest) -> NotifyResult:
    reply = AsyncResult()
    node.notifier.tell(Notify(request, reply))
    return reply.get(timeout=TIMEOUT)


def test_a_post_is_stored_for_every_follower_and_pushed_to_the_connected_ones(node: Node, storage: Storage) -> None:
    storage.add_posts([(POST, ANN)])
    storage.add_follows([(follower, ANN) for follower in (BOB, CAROL, DAVE, ERIN, FRED)])
    _, bob_socket = connect(node, BOB)
    _, carol_first = connect(node, CAROL)
    _, carol_second = connect(node, CAROL)
    _, ann_socket = connect(node, ANN)
    for socket in (bob_socket, carol_first, carol_second, ann_socket):
        socket.expect("connected")

    result = notify(node, NotifyRequest(kind="post", post_id=POST, actor_id=ANN))

    assert result == NotifyResult(recipients=5, online=2)
    for socket in (bob_socket, carol_first, carol_second):
        socket.expect(
            "notification", notificationType="post", actorId=ANN, postId=POST, text="ann published a new post"
        )
    for follower in (BOB, CAROL, DAVE, ERIN, FRED):
        [stored] = storage.notifications(follower, None, 10)
        assert (stored.type, stored.actor_id, stored.post_id, stored.read) == ("post", ANN, POST, False)
    assert storage.notifications(ANN, None, 10) == []
    assert ann_socket.frames == [ann_socket.frames[0]]  # the author got only its `connected`


def test_a_notification_for_an_unknown_post_stores_nothing_and_answers_not_found(node: Node, storage: Storage) -> None:
    reply = AsyncResult()
    node.notifier.tell(Notify(NotifyRequest(kind="like", post_id=404, actor_id=BOB), reply))

    with pytest.raises(Exception, match="post 404 does not exist"):
        reply.get(timeout=TIMEOUT)


class _UnansweringRouter(GeventActor):
    """A router that holds every `ConnectedAmong` until `release` is set: a fan-out that cannot finish."""

    def __init__(self, asked: Event, release: Event):
        super().__init__()
        self._asked, self._release = asked, release

    def on_receive(self, message: Any) -> Any:
        assert isinstance(message, ConnectedAmong)
        self._asked.set()
        self._release.wait(TIMEOUT)
        return frozenset()


def test_a_stopping_notifier_kills_a_fan_out_still_running_after_its_stop_timeout_and_fails_its_caller(
    storage: Storage,
) -> None:
    storage.add_posts([(POST, ANN)])
    asked, release = Event(), Event()
    router = _UnansweringRouter.start(asked, release)
    notifier = NotificationActor.start(
        storage, router, LocalCluster("unit"), lambda: 1, batch_size=10, concurrency=1, stop_timeout=0.1
    )
    try:
        reply = AsyncResult()
        notifier.tell(Notify(NotifyRequest(kind="like", post_id=POST, actor_id=BOB), reply))
        assert asked.wait(TIMEOUT)

        assert notifier.stop(block=True, timeout=TIMEOUT)  # pykka.Timeout if on_stop waited for the job

        with pytest.raises(StorageUnavailable, match="stopped"):
            reply.get(timeout=TIMEOUT)
        assert storage.notifications(ANN, None, 10) == []
    finally:
        release.set()
        router.stop(timeout=TIMEOUT)
