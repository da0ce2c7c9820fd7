"""What was acknowledged survives the process: kill -9, restart, graceful stop."""

from __future__ import annotations

import pytest

from tests.helpers.server import ServerFactory

pytestmark = pytest.mark.slow


def test_acknowledged_messages_survive_kill_9_and_arrive_on_connect(make_server: ServerFactory) -> None:
    server = make_server().start()
    alice_id, bob_id = server.add_users(2)
    count = 20
    with server.connect(alice_id) as alice:
        for n in range(count):
            alice.message(bob_id, f"durable {n}", f"k-{n}")
        acknowledged = [alice.expect("message_sent", clientMsgId=f"k-{n}")["messageId"] for n in range(count)]
        server.kill()
        assert alice.expect_close() == 1006  # no close frame: the process died

    server.start()
    with server.connect(bob_id) as bob:
        assert bob.connected["unreadMessages"] == count
        assert [bob.expect("message")["messageId"] for _ in range(count)] == acknowledged

    with server.connect(alice_id) as alice:
        # the client resends everything it is unsure of: nothing is stored twice
        for n in range(count):
            alice.message(bob_id, f"durable {n}", f"k-{n}")
        resent = [alice.expect("message_sent", clientMsgId=f"k-{n}")["messageId"] for n in range(count)]
        assert resent == acknowledged
        alice.send({"type": "history", "with": bob_id, "limit": 100})
        assert [m["messageId"] for m in alice.expect("history")["messages"]] == acknowledged


def test_sigterm_closes_every_socket_with_1001_and_exits_cleanly(make_server: ServerFactory) -> None:
    server = make_server().start()
    alice_id, bob_id = server.add_users(2)
    alice, bob = server.connect(alice_id), server.connect(bob_id)
    alice.message(bob_id, "before shutdown", "s-1")
    sent = alice.expect("message_sent", clientMsgId="s-1")
    bob.expect("message", messageId=sent["messageId"])

    assert server.stop() == 0
    assert alice.expect_close() == 1001
    assert bob.expect_close() == 1001

    server.start()
    with server.connect(alice_id) as again:
        again.send({"type": "history", "with": bob_id})
        assert [m["messageId"] for m in again.expect("history")["messages"]] == [sent["messageId"]]
