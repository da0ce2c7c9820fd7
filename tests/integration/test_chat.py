"""Chat over real sockets against the real server: receipts, sockets, history, offline, idempotency."""

from __future__ import annotations

import json
import re

from tests.helpers.server import SCRIPTED_CLIENT_LIMITS, ServerFactory, ServerProcess, new_user_ids

ISO_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_two_users_chat_with_sent_delivered_read_receipts(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        alice.message(bob_id, "hello bob", "c-1")

        sent = alice.expect("message_sent", clientMsgId="c-1")
        assert sent["to"] == bob_id and isinstance(sent["messageId"], int)
        assert ISO_UTC_MS.match(sent["createdAt"])
        message = bob.expect("message", messageId=sent["messageId"])
        assert message == {
            "type": "message",
            "messageId": sent["messageId"],
            "from": alice_id,
            "to": bob_id,
            "content": "hello bob",
            "createdAt": sent["createdAt"],
            "clientMsgId": "c-1",
        }
        delivered = alice.expect("message_delivered", messageId=sent["messageId"])
        assert delivered["clientMsgId"] == "c-1" and ISO_UTC_MS.match(delivered["deliveredAt"])

        bob.send({"type": "message_read", "messageId": sent["messageId"]})
        read = alice.expect("message_read", messageId=sent["messageId"])
        assert read["readBy"] == bob_id and ISO_UTC_MS.match(read["readAt"])

        alice.send({"type": "history", "with": bob_id})
        history = alice.expect("history")
        assert history["with"] == bob_id
        assert [(m["messageId"], m["status"]) for m in history["messages"]] == [(sent["messageId"], "read")]


def test_every_socket_of_a_user_sees_everything(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as laptop, server.connect(alice_id) as phone, server.connect(bob_id) as bob:
        laptop.message(bob_id, "from the laptop", "l-1")
        sent = laptop.expect("message_sent", clientMsgId="l-1")
        echo = phone.expect("message", messageId=sent["messageId"])
        assert echo["from"] == alice_id and echo["content"] == "from the laptop"
        bob.expect("message", messageId=sent["messageId"])
        for socket in (laptop, phone):
            socket.expect("message_delivered", messageId=sent["messageId"])
        laptop.assert_no_frame("message", messageId=sent["messageId"])

        bob.message(alice_id, "reply to both", "b-1")
        reply_id = bob.expect("message_sent", clientMsgId="b-1")["messageId"]
        for socket in (laptop, phone):
            assert socket.expect("message", messageId=reply_id)["content"] == "reply to both"

        phone.send({"type": "message_read", "messageId": reply_id})
        assert laptop.expect("message_read", messageId=reply_id)["readBy"] == alice_id
        assert bob.expect("message_read", messageId=reply_id)["readBy"] == alice_id


def test_closing_one_socket_leaves_the_others_working(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as tab, server.connect(bob_id) as bob:
        other_tab = server.connect(alice_id)
        other_tab.close()
        bob.message(alice_id, "still there?")
        assert tab.expect("message")["content"] == "still there?"
        tab.assert_alive()


def test_read_marks_every_earlier_message_from_that_sender(server: ServerProcess) -> None:
    alice_id, bob_id, carol_id = server.add_users(3)
    with server.connect(alice_id) as alice, server.connect(carol_id) as carol, server.connect(bob_id) as bob:
        ids = []
        for n in range(3):
            alice.message(bob_id, f"message {n}", f"r-{n}")
            ids.append(alice.expect("message_sent", clientMsgId=f"r-{n}")["messageId"])
        carol.message(bob_id, "from carol", "c-0")
        carol_message = carol.expect("message_sent", clientMsgId="c-0")["messageId"]
        for message_id in (*ids, carol_message):
            bob.expect("message", messageId=message_id)

        bob.send({"type": "message_read", "messageId": ids[-1]})
        alice.expect("message_read", messageId=ids[-1])

        bob.send({"type": "history", "with": alice_id})
        assert [m["status"] for m in bob.expect("history")["messages"]] == ["read"] * 3
        bob.send({"type": "history", "with": carol_id})
        assert [m["status"] for m in bob.expect("history")["messages"]] == ["delivered"]
        carol.assert_no_frame("message_read")


def test_messages_sent_while_offline_arrive_on_connect_oldest_first(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice:
        ids = []
        for n in range(5):
            alice.message(bob_id, f"while you were away {n}", f"o-{n}")
            ids.append(alice.expect("message_sent", clientMsgId=f"o-{n}")["messageId"])
        alice.assert_no_frame("message_delivered")

        with server.connect(bob_id) as bob:
            assert bob.connected["unreadMessages"] == 5
            received = [bob.expect("message")["messageId"] for _ in ids]
            assert received == ids
            for message_id in ids:
                alice.expect("message_delivered", messageId=message_id)

        with server.connect(bob_id) as bob_again:
            assert bob_again.connected["unreadMessages"] == 5  # delivered, not yet read
            bob_again.assert_no_frame("message")


def test_resending_a_client_msg_id_stores_and_delivers_nothing_twice(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(bob_id) as bob:
        with server.connect(alice_id) as alice:
            alice.message(bob_id, "only once", "dup-1")
            first = alice.expect("message_sent", clientMsgId="dup-1")
            alice.message(bob_id, "only once", "dup-1")
            again = alice.expect("message_sent", clientMsgId="dup-1")
            assert again["messageId"] == first["messageId"]

        with server.connect(alice_id) as reconnected:  # a resend after a reconnect
            reconnected.message(bob_id, "only once", "dup-1")
            assert reconnected.expect("message_sent", clientMsgId="dup-1")["messageId"] == first["messageId"]

        bob.expect("message", messageId=first["messageId"])
        bob.assert_no_frame("message")
        bob.send({"type": "history", "with": alice_id})
        assert [m["messageId"] for m in bob.expect("history")["messages"]] == [first["messageId"]]


def test_client_msg_ids_are_per_sender(server: ServerProcess) -> None:
    alice_id, bob_id, carol_id = server.add_users(3)
    with server.connect(alice_id) as alice, server.connect(carol_id) as carol:
        alice.message(bob_id, "from alice", "same-key")
        carol.message(bob_id, "from carol", "same-key")
        alice_sent = alice.expect("message_sent", clientMsgId="same-key")
        carol_sent = carol.expect("message_sent", clientMsgId="same-key")
        assert alice_sent["messageId"] != carol_sent["messageId"]


def test_messages_arrive_in_send_order_with_increasing_ids(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    count = 60
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        for n in range(count):
            alice.message(bob_id, f"#{n}", f"seq-{n}")
        sent_ids = [alice.expect("message_sent", clientMsgId=f"seq-{n}")["messageId"] for n in range(count)]
        assert sent_ids == sorted(sent_ids) and len(set(sent_ids)) == count
        frames = [bob.expect("message") for _ in range(count)]
        assert [frame["content"] for frame in frames] == [f"#{n}" for n in range(count)]
        assert [frame["messageId"] for frame in frames] == sent_ids


def test_history_pages_backwards_oldest_first(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice:
        ids = []
        for n in range(7):
            alice.message(bob_id, f"h{n}", f"h-{n}")
            ids.append(alice.expect("message_sent", clientMsgId=f"h-{n}")["messageId"])

        alice.send({"type": "history", "with": bob_id, "limit": 3})
        page = alice.expect("history")["messages"]
        assert [m["messageId"] for m in page] == ids[4:]
        assert page[0] == {
            "messageId": ids[4],
            "from": alice_id,
            "to": bob_id,
            "content": "h4",
            "createdAt": page[0]["createdAt"],
            "status": "sent",
            "deleted": False,
        }
        alice.send({"type": "history", "with": bob_id, "limit": 3, "before": ids[4]})
        assert [m["messageId"] for m in alice.expect("history")["messages"]] == ids[1:4]
        alice.send({"type": "history", "with": bob_id, "limit": 3, "before": ids[1]})
        assert [m["messageId"] for m in alice.expect("history")["messages"]] == ids[:1]
        alice.send({"type": "history", "with": bob_id})
        assert [m["messageId"] for m in alice.expect("history")["messages"]] == ids


def test_history_limit_is_capped_at_100(make_server: ServerFactory) -> None:
    server = make_server(SCRIPTED_CLIENT_LIMITS).start()  # 105 messages at once: more than a person sends
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice:
        for n in range(105):
            alice.message(bob_id, f"m{n}", f"cap-{n}")
        alice.expect("message_sent", clientMsgId="cap-104")
        alice.send({"type": "history", "with": bob_id, "limit": 500})
        messages = alice.expect("history")["messages"]
        assert len(messages) == 100 and messages[-1]["content"] == "m104"
        alice.send({"type": "history", "with": bob_id})
        assert len(alice.expect("history")["messages"]) == 50


def test_a_user_added_while_the_server_runs_becomes_reachable(server: ServerProcess) -> None:
    (alice_id,) = server.add_users(1)
    (newcomer_id,) = new_user_ids(1)  # not in the users table yet
    with server.connect(alice_id) as alice:
        alice.message(newcomer_id, "are you there?", "n-1")
        error = alice.expect_error("not_found")
        assert error["ref"] == {"type": "message", "clientMsgId": "n-1"}

        server.storage.add_users([(newcomer_id, "newcomer")])
        alice.message(newcomer_id, "are you there now?", "n-2")
        sent = alice.expect("message_sent", clientMsgId="n-2")
        with server.connect(newcomer_id) as newcomer:
            assert newcomer.expect("message")["messageId"] == sent["messageId"]


def test_ping_is_answered_with_pong_on_both_paths(server: ServerProcess) -> None:
    (user_id,) = server.add_users(1)
    for path in ("/", "/ws"):
        with server.client(path) as socket:
            socket.connect(user_id, server.token(user_id))
            socket.send({"type": "ping"})
            assert socket.expect("pong") == {"type": "pong"}


def test_notifications_request_and_read_all_reach_every_socket(server: ServerProcess) -> None:
    (user_id,) = server.add_users(1)
    with server.connect(user_id) as first, server.connect(user_id) as second:
        assert first.connected["unreadNotifications"] == 0
        first.send({"type": "notifications"})
        assert first.expect("notifications")["notifications"] == []
        first.send({"type": "notification_read", "all": True})
        for socket in (first, second):
            read = socket.expect("notification_read")
            assert read["all"] is True and ISO_UTC_MS.match(read["readAt"])


def test_health_reports_the_database_and_connections(server: ServerProcess) -> None:
    (user_id,) = server.add_users(1)
    with server.connect(user_id):
        status, body = server.get("/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok" and health["database"] == "ok"
        assert health["sockets"] >= 1


def test_a_long_backlog_arrives_complete_and_in_order(make_server: ServerFactory) -> None:
    server = make_server(SCRIPTED_CLIENT_LIMITS).start()  # a bulk sender: no person sends 1,200 messages at once
    alice_id, bob_id = server.add_users(2)
    count = 1200  # more than one backlog page and more than a socket's send queue
    with server.connect(alice_id) as alice:
        for n in range(count):
            alice.message(bob_id, f"backlog {n}", f"b-{n}")
        alice.expect("message_sent", clientMsgId=f"b-{count - 1}", timeout=60)
    with server.connect(bob_id) as bob:
        contents = [bob.expect("message", timeout=30)["content"] for _ in range(count)]
        assert contents == [f"backlog {n}" for n in range(count)]
        bob.assert_alive()


def test_a_user_may_message_themself_and_every_socket_gets_it_once(server: ServerProcess) -> None:
    (user_id,) = server.add_users(1)
    with server.connect(user_id) as first, server.connect(user_id) as second:
        first.message(user_id, "note to self", "self-1")
        sent = first.expect("message_sent", clientMsgId="self-1")
        for socket in (first, second):
            assert socket.expect("message", messageId=sent["messageId"])["content"] == "note to self"
            socket.expect("message_delivered", messageId=sent["messageId"])
            socket.assert_no_frame("message", messageId=sent["messageId"])


def test_metrics_are_served_in_prometheus_text_format(server: ServerProcess) -> None:
    (user_id,) = server.add_users(1)
    with server.connect(user_id):
        status, body = server.get("/metrics")
    text = body.decode()
    assert status == 200
    sockets = re.search(r"^realtime_open_sockets (\S+)$", text, re.MULTILINE)
    assert sockets is not None and float(sockets.group(1)) >= 1
    assert re.search(r'^realtime_write_backlog\{writer="messages"\} \S+$', text, re.MULTILINE)
    assert "process_resident_memory_bytes" in text
