"""Several nodes joined through a real redis-server (`[cluster] backend = redis`), on one shared database.

Every node is a real `python -m web` process; users put sockets on different nodes and every frame
of the wire contract must reach every socket it is addressed to, wherever that socket is, once.
Most tests share three nodes per module (each test with users of its own); the tests that stop
Redis or kill a node start nodes of their own.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator

import pytest
import redis

from cluster.redis_pubsub import channel_of
from tests.helpers.client import Client
from tests.helpers.notifications import QUIET, assert_notification, assert_ok, ids, name_of, notify, post_of
from tests.helpers.operations import Scrape, stored_messages
from tests.helpers.redis_server import RedisServer
from tests.helpers.server import (
    BACKENDS,
    SCRIPTED_CLIENT_LIMITS,
    DatabaseFactory,
    ServerFactory,
    ServerProcess,
    wait_until,
)

RECOVERY_TIMEOUT = 15.0  # Redis back: the nodes reconnect within their longest backoff (5 s), and then some


# ---------------------------------------------------------------- nodes


def node_env(redis_server: RedisServer, n: int) -> dict[str, str]:
    """What makes a service node-`n` of the cluster joined through `redis_server`."""
    return {
        "REALTIME_CLUSTER_BACKEND": "redis",
        "REALTIME_CLUSTER_REDIS_URL": redis_server.url,
        "REALTIME_CLUSTER_NODE_NAME": f"node-{n}",
    }


@pytest.fixture(scope="module", params=BACKENDS)
def nodes(
    request: pytest.FixtureRequest,
    new_database: DatabaseFactory,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[ServerProcess]]:
    """Three nodes shared by the tests of this module that neither stop Redis nor kill a node."""
    workdir = tmp_path_factory.mktemp(f"cluster-{request.param}")
    database = new_database(request.param)
    started: list[ServerProcess] = []
    try:
        for n in range(1, 4):
            started.append(ServerProcess(workdir / f"node-{n}", database, node_env(redis_server, n)).start())
        yield started
    finally:
        for node in started:
            node.stop()
            node.close_storage()


NodesFactory = Callable[..., list[ServerProcess]]


@pytest.fixture
def make_nodes(make_server: ServerFactory) -> NodesFactory:
    """`make_nodes(redis, count, extra_env=None)`: started nodes of this test's own, on a database of its own."""

    def make(redis_server: RedisServer, count: int, extra_env: dict[str, str] | None = None) -> list[ServerProcess]:
        return [make_server({**node_env(redis_server, n), **(extra_env or {})}).start() for n in range(1, count + 1)]

    return make


# ---------------------------------------------------------------- helpers


def message_frame(sent: dict[str, Any], sender: int, content: str) -> dict[str, Any]:
    """The `message` frame of a message acknowledged with `sent`."""
    return {
        "type": "message",
        "messageId": sent["messageId"],
        "from": sender,
        "to": sent["to"],
        "content": content,
        "createdAt": sent["createdAt"],
        "clientMsgId": sent["clientMsgId"],
    }


def assert_no_more(sockets: Iterable[Client], frame_type: str, **fields: Any) -> None:
    """None of these sockets gets another such frame within one QUIET period, waited once for all of them."""
    deadline = time.monotonic() + QUIET
    for socket in sockets:
        socket.assert_no_frame(frame_type, within=max(0.01, deadline - time.monotonic()), **fields)


def subscribers(client: redis.Redis, user_id: int) -> int:
    """Redis's own count of the nodes subscribed to the user's channel."""
    [(_, count)] = client.pubsub_numsub(channel_of(user_id))
    return count


def wait_cluster(nodes: list[ServerProcess], state: str) -> None:
    """Poll /healthz until every node reports `"cluster": state`; then each answers 200 with the database ok."""
    for node in nodes:
        node.wait_health(lambda _, body: body["cluster"] == state, f"{node.http_url} cluster {state}", RECOVERY_TIMEOUT)
    for n, node in enumerate(nodes, 1):
        status, body = node.health()
        assert status == 200, body
        assert body["status"] == "ok" and body["database"] == "ok" and body["cluster"] == state, body
        assert body["node"] == f"node-{n}", body


def send(sender: Client, to: int, content: str, client_msg_id: str) -> dict[str, Any]:
    """Send a message and return its `message_sent`."""
    sender.message(to, content, client_msg_id)
    return sender.expect("message_sent", clientMsgId=client_msg_id)


# ---------------------------------------------------------------- chat across nodes


def test_chat_across_nodes_reaches_every_socket_with_sent_delivered_read(nodes: list[ServerProcess]) -> None:
    n1, n2, n3 = nodes
    alice_id, bob_id = n1.add_users(2)
    with (
        n1.connect(alice_id) as alice,
        n2.connect(alice_id) as alice_tab,
        n2.connect(bob_id) as bob,
        n3.connect(bob_id) as bob_phone,
    ):
        sent = send(alice, bob_id, "hello from node 1", "x-1")
        expected = message_frame(sent, alice_id, "hello from node 1")
        assert bob.expect("message", messageId=sent["messageId"]) == expected
        assert bob_phone.expect("message", messageId=sent["messageId"]) == expected
        assert alice_tab.expect("message", messageId=sent["messageId"]) == expected  # the sender's copy
        for socket in (alice, alice_tab):
            delivered = socket.expect("message_delivered", messageId=sent["messageId"])
            assert delivered["clientMsgId"] == "x-1"
        # once each: Bob's two nodes both wrote it to a socket, and only one of them announces the delivery
        assert_no_more([alice, alice_tab], "message_delivered", messageId=sent["messageId"])
        assert_no_more([alice, alice_tab, bob, bob_phone], "message", messageId=sent["messageId"])

        bob.send({"type": "message_read", "messageId": sent["messageId"]})
        for socket in (alice, alice_tab, bob_phone):
            read = socket.expect("message_read", messageId=sent["messageId"])
            assert read["readBy"] == bob_id
        assert_no_more([alice, alice_tab, bob_phone, bob], "message_read")


def test_sockets_of_one_user_on_three_nodes_each_get_every_frame(nodes: list[ServerProcess]) -> None:
    n1, n2, n3 = nodes
    user_id, sender_id, liker_id = n1.add_users(3)
    post_id = post_of(n1, user_id)
    with (
        n2.connect(sender_id) as sender,
        n1.connect(user_id) as first,
        n2.connect(user_id) as second,
        n3.connect(user_id) as third,
    ):
        sockets = (first, second, third)
        sent = send(sender, user_id, "to all of your sockets", "s-1")
        for socket in sockets:
            assert socket.expect("message", messageId=sent["messageId"]) == message_frame(
                sent, sender_id, "to all of your sockets"
            )

        assert_ok(notify(n2, "like", postId=post_id, userId=liker_id), recipients=1, online=1)
        pushed = [socket.expect("notification", postId=post_id) for socket in sockets]
        assert_notification(pushed[0], "like", liker_id, post_id, f"{name_of(liker_id)} liked your post")
        assert pushed[1] == pushed[0] and pushed[2] == pushed[0]

        second.send({"type": "notification_read", "notificationId": pushed[0]["notificationId"]})
        for socket in sockets:
            assert "all" not in socket.expect("notification_read", notificationId=pushed[0]["notificationId"])
        assert_no_more(sockets, "message")
        assert_no_more(sockets, "notification")
        assert_no_more(sockets, "notification_read")

    with n3.connect(user_id) as later:
        assert later.connected["unreadNotifications"] == 0  # read on node 2, cleared for node 3
        later.send({"type": "notifications"})
        [entry] = later.expect("notifications")["notifications"]
        assert entry["notificationId"] == pushed[0]["notificationId"] and entry["read"] is True


def test_typing_on_one_node_reaches_every_socket_of_the_recipient_on_the_others_and_is_never_stored(
    nodes: list[ServerProcess],
) -> None:
    n1, n2, n3 = nodes
    alice_id, bob_id = n1.add_users(2)
    with n1.connect(alice_id) as alice, n2.connect(bob_id) as bob, n3.connect(bob_id) as bob_phone:
        alice.send({"type": "typing", "to": bob_id})
        for socket in (bob, bob_phone):
            assert socket.expect("typing") == {"type": "typing", "from": alice_id, "typing": True}
        alice.send({"type": "typing", "to": bob_id, "typing": False})
        for socket in (bob, bob_phone):
            assert socket.expect("typing") == {"type": "typing", "from": alice_id, "typing": False}
        bob.send({"type": "history", "with": alice_id})
        assert bob.expect("history")["messages"] == []
        assert_no_more([alice], "typing")


def test_a_deletion_on_one_node_reaches_both_users_sockets_on_the_others_and_every_node_reads_it_deleted(
    nodes: list[ServerProcess],
) -> None:
    n1, n2, n3 = nodes
    alice_id, bob_id = n1.add_users(2)
    with n1.connect(alice_id) as alice, n3.connect(alice_id) as alice_phone, n2.connect(bob_id) as bob:
        sent = send(alice, bob_id, "take this back", "d-1")
        bob.expect("message", messageId=sent["messageId"])
        alice.send({"type": "message_delete", "messageId": sent["messageId"]})
        message_id = sent["messageId"]
        deleted = [socket.expect("message_deleted", messageId=message_id) for socket in (alice, alice_phone, bob)]
        assert all(frame == deleted[0] for frame in deleted)

        with n3.connect(bob_id) as bob_tablet:  # the inbox and history are the database's, on any node
            bob_tablet.send({"type": "conversations"})
            [entry] = bob_tablet.expect("conversations")["conversations"]
            assert entry["with"] == alice_id and entry["lastMessage"]["messageId"] == message_id
            assert entry["lastMessage"]["deleted"] is True and entry["lastMessage"]["content"] == ""


# ---------------------------------------------------------------- notifications across nodes


@pytest.mark.parametrize("kind", ["like", "comment"])
def test_like_or_comment_called_on_a_node_without_the_owner_reaches_the_owner_once(
    nodes: list[ServerProcess], kind: str
) -> None:
    n1, n2, n3 = nodes
    owner_id, actor_id = n1.add_users(2)
    post_id = post_of(n1, owner_id)
    extra = {"commentId": ids(1)[0]} if kind == "comment" else {}
    with n2.connect(owner_id) as laptop, n3.connect(owner_id) as phone, n3.connect(actor_id) as actor:
        assert_ok(notify(n1, kind, postId=post_id, userId=actor_id, **extra), recipients=1, online=1)
        text = f"{name_of(actor_id)} {'liked' if kind == 'like' else 'commented on'} your post"
        frames = [socket.expect("notification", postId=post_id) for socket in (laptop, phone)]
        assert_notification(frames[0], kind, actor_id, post_id, text, extra.get("commentId"))
        assert frames[1] == frames[0]
        assert_no_more([laptop, phone, actor], "notification")


def test_post_reaches_followers_spread_over_the_nodes_once_each_and_counts_them_all_online(
    nodes: list[ServerProcess],
) -> None:
    n1, n2, n3 = nodes
    author, on1, on2, on3, on2_and_3, on1_and_2, offline, stranger = n1.add_users(8)
    followers = [on1, on2, on3, on2_and_3, on1_and_2, offline]
    n1.storage.add_follows([(follower, author) for follower in followers])
    post_id = post_of(n1, author)
    placement = [(n1, on1), (n2, on2), (n3, on3), (n2, on2_and_3), (n3, on2_and_3), (n1, on1_and_2), (n2, on1_and_2)]
    sockets = [node.connect(user_id) for node, user_id in placement]
    bystanders = [n2.connect(author), n3.connect(stranger)]
    try:
        assert_ok(notify(n3, "post", postId=post_id, userId=author), recipients=6, online=5)
        text = f"{name_of(author)} published a new post"
        by_user: dict[int, set[int]] = {}
        for socket, (_, user_id) in zip(sockets, placement):
            frame = socket.expect("notification", postId=post_id)
            assert_notification(frame, "post", author, post_id, text)
            by_user.setdefault(user_id, set()).add(frame["notificationId"])
        assert all(len(notification_ids) == 1 for notification_ids in by_user.values()), by_user  # one row each
        assert_no_more(sockets + bystanders, "notification")
    finally:
        for socket in sockets + bystanders:
            socket.close()
    with n2.connect(offline) as late:
        assert late.connected["unreadNotifications"] == 1


# ---------------------------------------------------------------- chat semantics across nodes


def test_message_to_an_offline_user_arrives_when_they_connect_to_another_node(nodes: list[ServerProcess]) -> None:
    n1, n2, _ = nodes
    alice_id, bob_id = n1.add_users(2)
    with n1.connect(alice_id) as alice:
        sent = [send(alice, bob_id, f"while you were away {n}", f"o-{n}") for n in range(3)]
        alice.assert_no_frame("message_delivered", within=QUIET)

        with n2.connect(bob_id) as bob:
            assert bob.connected["unreadMessages"] == 3
            backlog = [bob.expect("message") for _ in sent]
            assert backlog == [message_frame(s, alice_id, f"while you were away {n}") for n, s in enumerate(sent)]
            for s in sent:
                alice.expect("message_delivered", messageId=s["messageId"])
            assert_no_more([bob], "message")
            assert_no_more([alice], "message_delivered")


def test_resend_on_another_node_returns_the_same_id_stores_one_row_and_delivers_once(
    nodes: list[ServerProcess],
) -> None:
    n1, n2, n3 = nodes
    alice_id, bob_id = n1.add_users(2)
    # Bob online: the first send is delivered; the resend on another node changes nothing
    with n3.connect(bob_id) as bob:
        with n1.connect(alice_id) as alice:
            first = send(alice, bob_id, "only once", "dup-1")
            bob.expect("message", messageId=first["messageId"])
            alice.expect("message_delivered", messageId=first["messageId"])
        with n2.connect(alice_id) as alice_again:
            assert send(alice_again, bob_id, "only once", "dup-1")["messageId"] == first["messageId"]
        assert_no_more([bob], "message")

    # Bob offline: the resend routes the undelivered message again, and Bob still gets it once
    with n1.connect(alice_id) as alice:
        second = send(alice, bob_id, "once more", "dup-2")
    with n2.connect(alice_id) as alice_again:
        assert send(alice_again, bob_id, "once more", "dup-2")["messageId"] == second["messageId"]
        with n3.connect(bob_id) as bob:
            assert bob.expect("message") == message_frame(second, alice_id, "once more")
            assert_no_more([bob], "message")

    rows = stored_messages(n1, [alice_id])
    expected = [(first["messageId"], "dup-1"), (second["messageId"], "dup-2")]
    assert [(row.id, row.client_msg_id) for row in rows] == expected


def test_messages_across_nodes_arrive_in_send_order_with_increasing_ids(
    make_nodes: NodesFactory, redis_server: RedisServer
) -> None:
    n1, n2, n3 = make_nodes(redis_server, 3, SCRIPTED_CLIENT_LIMITS)  # a bulk sender: 200 messages at once
    alice_id, bob_id = n1.add_users(2)
    count = 200
    with n1.connect(alice_id) as alice, n3.connect(alice_id) as alice_tab, n2.connect(bob_id) as bob:
        for n in range(count):
            alice.message(bob_id, f"#{n}", f"seq-{n}")
        sent_ids = [alice.expect("message_sent", clientMsgId=f"seq-{n}")["messageId"] for n in range(count)]
        assert sent_ids == sorted(sent_ids) and len(set(sent_ids)) == count
        for socket in (bob, alice_tab):  # the recipient, and the sender's copies on a third node
            frames = [socket.expect("message") for _ in range(count)]
            assert [frame["content"] for frame in frames] == [f"#{n}" for n in range(count)]
            assert [frame["messageId"] for frame in frames] == sent_ids
        for socket in (alice, alice_tab):
            for message_id in sent_ids:
                socket.expect("message_delivered", messageId=message_id)


def test_a_node_is_subscribed_to_a_user_exactly_while_the_user_has_a_socket_there(
    nodes: list[ServerProcess], redis_server: RedisServer
) -> None:
    n1, n2, _ = nodes
    (user_id,) = n1.add_users(1)
    client = redis_server.client()
    try:
        assert subscribers(client, user_id) == 0
        first = n1.connect(user_id)
        assert subscribers(client, user_id) == 1  # `connected` waits for the subscription
        second = n1.connect(user_id)
        assert subscribers(client, user_id) == 1  # one subscription per node, not per socket
        third = n2.connect(user_id)
        assert subscribers(client, user_id) == 2
        first.close()
        second.close()
        wait_until(lambda: subscribers(client, user_id) == 1, "node 1 unsubscribed after the user's last socket there")
        third.close()
        wait_until(lambda: subscribers(client, user_id) == 0, "no node subscribed after the user's last socket")
    finally:
        client.close()


# ---------------------------------------------------------------- faults


@pytest.mark.slow
def test_redis_outage_degrades_health_keeps_local_chat_and_recovers_and_catches_up_without_restarts(
    make_nodes: NodesFactory, own_redis: RedisServer
) -> None:
    n1, n2 = make_nodes(own_redis, 2)
    alice_id, bob_id, carol_id, dave_id = n1.add_users(4)
    with n1.connect(alice_id) as alice, n1.connect(carol_id) as carol, n2.connect(bob_id) as bob:
        before = send(alice, bob_id, "before the outage", "f-0")
        bob.expect("message", messageId=before["messageId"])
        alice.expect("message_delivered", messageId=before["messageId"])

        own_redis.stop()
        wait_cluster([n1, n2], "degraded")
        for node in (n1, n2):
            assert Scrape(node).value("realtime_cluster_up") == 0

        # users on one node still chat live
        local = send(alice, carol_id, "same node", "f-1")
        assert carol.expect("message", messageId=local["messageId"]) == message_frame(local, alice_id, "same node")
        alice.expect("message_delivered", messageId=local["messageId"])
        # a message to another node's user is still stored and acknowledged
        during = send(alice, bob_id, "during the outage", "f-2")
        assert during["messageId"] in {row.id for row in stored_messages(n1, [alice_id])}
        dave = n2.connect(dave_id)  # a user who arrives while Redis is away

        own_redis.start()
        wait_cluster([n1, n2], "ok")
        for node in (n1, n2):
            assert Scrape(node).value("realtime_cluster_up") == 1
        # what was stored during the outage reaches Bob's open socket once the nodes rejoin, and counts as
        # delivered (Alice's receipt travels live only if her node has rejoined by then: not asserted)
        assert bob.expect("message", messageId=during["messageId"]) == message_frame(
            during, alice_id, "during the outage"
        )
        wait_until(
            lambda: {row.id: row.status for row in stored_messages(n1, [alice_id])}[during["messageId"]] == "delivered",
            "the message stored during the outage marked delivered",
        )

        # the sockets opened before the outage work across nodes again: both nodes subscribed again
        after = send(alice, bob_id, "after the outage", "f-3")
        assert bob.expect("message", messageId=after["messageId"]) == message_frame(after, alice_id, "after the outage")
        alice.expect("message_delivered", messageId=after["messageId"])
        reply = send(bob, alice_id, "reply after the outage", "f-4")
        assert alice.expect("message", messageId=reply["messageId"])["content"] == "reply after the outage"
        bob.expect("message_delivered", messageId=reply["messageId"])
        with dave:  # and node 2 subscribed to the user who connected during the outage, too
            welcome = send(alice, dave_id, "welcome", "f-5")
            assert dave.expect("message", messageId=welcome["messageId"])["content"] == "welcome"

        # ... once: not again on the open socket, nor as backlog on a new one
        with n2.connect(bob_id) as bob_again:
            assert_no_more([bob, bob_again], "message", messageId=during["messageId"])
            assert_no_more([bob_again], "message")


@pytest.mark.slow
def test_users_of_a_killed_node_reconnect_elsewhere_and_get_every_acknowledged_message_once(
    make_nodes: NodesFactory, redis_server: RedisServer
) -> None:
    doomed, survivor = make_nodes(redis_server, 2)
    alice_id, bob_id = doomed.add_users(2)
    with survivor.connect(alice_id) as alice, doomed.connect(bob_id) as bob:
        # delivered and recorded before the crash
        settled = [send(alice, bob_id, f"settled {n}", f"k-{n}")["messageId"] for n in range(10)]
        for message_id in settled:
            bob.expect("message", messageId=message_id)
            alice.expect("message_delivered", messageId=message_id)
        # in flight when the node dies
        for n in range(10, 30):
            alice.message(bob_id, f"in flight {n}", f"k-{n}")
        doomed.kill()
        assert bob.expect_close() == 1006  # no close frame: the process died
        live = [frame["messageId"] for frame in bob.received if frame["type"] == "message"]
        assert len(live) == len(set(live))
        in_flight = [alice.expect("message_sent", clientMsgId=f"k-{n}")["messageId"] for n in range(10, 30)]
        # sent while Bob has no socket anywhere
        offline = [send(alice, bob_id, f"while down {n}", f"k-{n}")["messageId"] for n in range(30, 40)]

        rows = stored_messages(survivor, [alice_id])
        acknowledged = settled + in_flight + offline
        assert [row.id for row in rows] == acknowledged, "a message acknowledged is not stored, or stored twice"
        assert [row.client_msg_id for row in rows] == [f"k-{n}" for n in range(40)]
        undelivered = [row.id for row in rows if row.status == "sent"]

        with survivor.connect(bob_id) as bob_again:
            assert bob_again.connected["unreadMessages"] == 40
            backlog = [bob_again.expect("message")["messageId"] for _ in undelivered]
            assert backlog == undelivered  # exactly what no socket took before the crash, oldest first, once
            for message_id in backlog:
                alice.expect("message_delivered", messageId=message_id)
            assert_no_more([bob_again], "message")
        # the dead node may have announced some of what it delivered before dying, never anything twice
        announced = [frame["messageId"] for frame in alice.take_all("message_delivered", within=QUIET)]
        assert len(announced) == len(set(announced)) and set(announced) <= set(in_flight) - set(backlog), announced

    assert set(offline) <= set(backlog) and not set(settled) & set(backlog)
    assert set(settled) | set(live) | set(backlog) == set(acknowledged), "an acknowledged message never reached Bob"
    # a message can only come twice if the dead node wrote it to Bob's socket but died before recording that
    assert set(live) & set(backlog) <= set(in_flight)
