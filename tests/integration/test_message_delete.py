"""Message deletion against the real server, on SQLite and MariaDB: the sender retracts a message for both sides.

Where a test shows that a frame does NOT come, it first waits for a later frame that the server sends after it
would have (a receipt of a later message, the `pong` after the backlog), then looks at what arrived.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers.chat import history, unique
from tests.helpers.client import Client
from tests.helpers.server import ServerProcess

ISO_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def sent_message(sender: Client, to: int, content: str) -> int:
    """Send `content` to `to` and return its messageId once stored."""
    client_msg_id = unique("d")
    sender.message(to, content, client_msg_id)
    return sender.expect("message_sent", clientMsgId=client_msg_id)["messageId"]


def delete(client: Client, message_id: Any) -> None:
    client.send({"type": "message_delete", "messageId": message_id})


def stored_row(server: ServerProcess, message_id: int) -> tuple:
    """(sender_id, recipient_id, content, created_at, deleted_at) of the row, read from the database itself."""
    rows = server.storage.engine.transaction(
        lambda session: session.query(
            "SELECT sender_id, recipient_id, content, created_at, deleted_at FROM realtime_messages WHERE id = %s",
            (message_id,),
        )
    )
    sender_id, recipient_id, content, created_at, deleted_at = rows[0]
    return int(sender_id), int(recipient_id), content, int(created_at), deleted_at


def test_deleting_tells_every_socket_of_both_users_and_erases_the_stored_content(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with (
        server.connect(alice_id) as laptop,
        server.connect(alice_id) as phone,
        server.connect(bob_id) as bob,
        server.connect(bob_id) as bob_tablet,
    ):
        kept = sent_message(laptop, bob_id, "this one stays")
        secret = sent_message(laptop, bob_id, "oops, wrong chat")
        for socket in (bob, bob_tablet):
            socket.expect("message", messageId=secret)
        laptop.expect("message_delivered", messageId=secret)
        created_at = stored_row(server, secret)[3]

        delete(laptop, secret)
        frames = [socket.expect("message_deleted", messageId=secret) for socket in (laptop, phone, bob, bob_tablet)]
        assert frames[0] == {"type": "message_deleted", "messageId": secret, "deletedAt": frames[0]["deletedAt"]}
        assert ISO_UTC_MS.match(frames[0]["deletedAt"]) and all(frame == frames[0] for frame in frames)

        sender_id, recipient_id, content, stored_created_at, deleted_at = stored_row(server, secret)
        assert content == "" and deleted_at is not None
        assert (sender_id, recipient_id, stored_created_at) == (alice_id, bob_id, created_at)
        assert stored_row(server, kept)[2] == "this one stays"

        for socket, other in ((laptop, bob_id), (bob, alice_id)):
            entries = {entry["messageId"]: entry for entry in history(socket, other)}
            assert entries[secret]["deleted"] is True and entries[secret]["content"] == ""
            assert entries[secret]["status"] == "delivered"  # how far it got before it was deleted
            assert entries[kept]["deleted"] is False and entries[kept]["content"] == "this one stays"


def test_only_the_sender_may_delete(server: ServerProcess) -> None:
    alice_id, bob_id, carol_id = server.add_users(3)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob, server.connect(carol_id) as carol:
        message_id = sent_message(alice, bob_id, "mine to take back")
        for other in (bob, carol):
            delete(other, message_id)
            error = other.expect_error("forbidden")
            assert error["ref"] == {"type": "message_delete"}
            other.assert_alive()
        _, _, content, _, deleted_at = stored_row(server, message_id)
        assert (content, deleted_at) == ("mine to take back", None)
        alice.assert_no_frame("message_deleted", within=0)


def test_an_unknown_message_is_not_found(server: ServerProcess) -> None:
    (alice_id,) = server.add_users(1)
    with server.connect(alice_id) as alice:
        delete(alice, 2**63 - 1)  # the largest id: no message of a test database has it
        assert alice.expect_error("not_found")["ref"] == {"type": "message_delete"}
        alice.assert_alive()


@pytest.mark.parametrize("bad", [None, "1", 1.5, True, 0, -3, 2**63, [1]], ids=repr)
def test_a_bad_message_id_is_a_bad_request_and_the_socket_stays_open(server: ServerProcess, bad: Any) -> None:
    (alice_id,) = server.add_users(1)
    with server.connect(alice_id) as alice:
        delete(alice, bad)
        assert alice.expect_error("bad_request")["ref"] == {"type": "message_delete"}
        alice.assert_alive()


def test_deleting_twice_answers_again_with_the_first_deletion_time(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        message_id = sent_message(alice, bob_id, "twice")
        delete(alice, message_id)
        first = alice.expect("message_deleted", messageId=message_id)
        bob.expect("message_deleted", messageId=message_id)
        delete(alice, message_id)
        assert alice.expect("message_deleted", messageId=message_id) == first
        assert bob.expect("message_deleted", messageId=message_id) == first
        alice.assert_no_frame("error", within=0)


def test_a_deleted_message_is_never_pushed_delivered_or_counted_unread(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice:
        gone = sent_message(alice, bob_id, "never mind")
        stays = sent_message(alice, bob_id, "hello")
        delete(alice, gone)
        alice.expect("message_deleted", messageId=gone)
        with server.connect(bob_id) as bob:
            assert bob.connected["unreadMessages"] == 1
            assert bob.expect("message")["messageId"] == stays
            alice.expect("message_delivered", messageId=stays)
            bob.assert_alive()  # the pong comes after the whole backlog
            bob.assert_no_frame("message", within=0)
        alice.assert_no_frame("message_delivered", messageId=gone)


def test_read_receipts_stop_for_a_deleted_message(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob, server.connect(bob_id) as bob_phone:
        first, gone, last = (sent_message(alice, bob_id, f"message {n}") for n in range(3))
        for message_id in (first, gone, last):
            bob.expect("message", messageId=message_id)
        delete(alice, gone)
        bob.expect("message_deleted", messageId=gone)

        bob.send({"type": "message_read", "messageId": gone})  # a client that had not heard yet: no error, no receipt
        bob.send({"type": "message_read", "messageId": last})
        alice.expect("message_read", messageId=last)
        bob_phone.expect("message_read", messageId=last)
        for socket in (alice, bob_phone):
            socket.assert_no_frame("message_read", within=0, messageId=gone)
        bob.assert_no_frame("error", within=0)
        statuses = {entry["messageId"]: (entry["status"], entry["deleted"]) for entry in history(bob, alice_id)}
        assert statuses == {first: ("read", False), gone: ("delivered", True), last: ("read", False)}
        with server.connect(bob_id) as bob_again:
            assert bob_again.connected["unreadMessages"] == 0


def test_resending_a_deleted_message_does_not_bring_it_back(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice:
        alice.message(bob_id, "take it back", "resent-1")
        message_id = alice.expect("message_sent", clientMsgId="resent-1")["messageId"]
        delete(alice, message_id)
        alice.expect("message_deleted", messageId=message_id)

        alice.message(bob_id, "take it back", "resent-1")
        assert alice.expect("message_sent", clientMsgId="resent-1")["messageId"] == message_id
        assert stored_row(server, message_id)[2] == ""
        with server.connect(bob_id) as bob:
            assert bob.connected["unreadMessages"] == 0
            bob.assert_alive()
            bob.assert_no_frame("message", within=0)
            [entry] = history(bob, alice_id)
            assert entry["deleted"] is True and entry["content"] == ""
