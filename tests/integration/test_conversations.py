"""The inbox (`conversations`) against the real server, on SQLite and MariaDB: one entry per peer, latest
activity first, paged by the last message, with unread counts that follow new messages, reads and deletions.

A frame answered after a `message_sent` or after the reader's own `message_read` (handled in order by the
same user's actor) sees what those stored: no test waits for time to pass.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.chat import unique
from tests.helpers.client import Client
from tests.helpers.server import ServerProcess


def inbox(client: Client, **fields: Any) -> list[dict[str, Any]]:
    """One `conversations` page, asked with `fields` (limit, before)."""
    client.send({"type": "conversations", **fields})
    return client.expect("conversations")["conversations"]


def summary(page: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    """(with, lastMessage's id, unread) of each entry, in order."""
    return [(entry["with"], entry["lastMessage"]["messageId"], entry["unread"]) for entry in page]


def sent(sender: Client, to: int, content: str = "hello") -> int:
    """Send `content` to `to` and return its messageId once stored."""
    client_msg_id = unique("i")
    sender.message(to, content, client_msg_id)
    return sender.expect("message_sent", clientMsgId=client_msg_id)["messageId"]


def test_the_inbox_lists_peers_by_latest_activity_with_unread_counts_that_follow_messages_and_reads(
    server: ServerProcess,
) -> None:
    alice_id, bob_id, carol_id = server.add_users(3)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob, server.connect(carol_id) as carol:
        from_bob = [sent(bob, alice_id, f"b{n}") for n in range(3)]
        from_carol = sent(carol, alice_id, "hi alice")
        assert summary(inbox(alice)) == [(carol_id, from_carol, 1), (bob_id, from_bob[-1], 3)]

        reply = sent(alice, bob_id, "hi bob")  # alice's own message: newest activity, no unread added
        page = inbox(alice)
        assert summary(page) == [(bob_id, reply, 3), (carol_id, from_carol, 1)]
        assert page[0]["lastMessage"] == {
            "messageId": reply,
            "from": alice_id,
            "to": bob_id,
            "content": "hi bob",
            "createdAt": page[0]["lastMessage"]["createdAt"],
            "status": page[0]["lastMessage"]["status"],
            "deleted": False,
        }
        assert summary(inbox(bob)) == [(alice_id, reply, 1)]

        alice.send({"type": "message_read", "messageId": from_bob[1]})  # reads b0 and b1
        assert summary(inbox(alice)) == [(bob_id, reply, 1), (carol_id, from_carol, 1)]
        bob.expect("message_read", messageId=from_bob[1])
        alice.send({"type": "message_read", "messageId": from_carol})
        assert summary(inbox(alice)) == [(bob_id, reply, 1), (carol_id, from_carol, 0)]

        newest = sent(carol, alice_id, "still there?")
        assert summary(inbox(alice)) == [(carol_id, newest, 1), (bob_id, reply, 1)]


def test_paging_with_before_returns_each_conversation_once_latest_first(server: ServerProcess) -> None:
    alice_id, *peer_ids = server.add_users(6)
    with server.connect(alice_id) as alice:
        last = {}
        for round_ in range(2):
            for peer_id in peer_ids:
                last[peer_id] = sent(alice, peer_id, f"round {round_}")
        expected = sorted(((peer_id, message_id, 0) for peer_id, message_id in last.items()), key=lambda e: -e[1])

        pages, before = [], None
        while page := inbox(alice, limit=2, **({} if before is None else {"before": before})):
            assert len(page) <= 2
            pages.append(summary(page))
            before = page[-1]["lastMessage"]["messageId"]
        assert [entry for page in pages for entry in page] == expected
        assert [len(page) for page in pages] == [2, 2, 1]
        assert summary(inbox(alice, limit=100)) == expected


def test_a_deleted_last_message_shows_deleted_and_leaves_the_unread_count(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        sent(alice, bob_id, "fine")
        oops = sent(alice, bob_id, "oops")
        assert summary(inbox(bob)) == [(alice_id, oops, 2)]

        alice.send({"type": "message_delete", "messageId": oops})
        bob.expect("message_deleted", messageId=oops)
        alice.expect("message_deleted", messageId=oops)
        for client, peer_id, unread in ((bob, alice_id, 1), (alice, bob_id, 0)):
            [entry] = inbox(client)
            assert (entry["with"], entry["unread"]) == (peer_id, unread)
            last = entry["lastMessage"]
            assert (last["messageId"], last["deleted"], last["content"]) == (oops, True, "")
            assert last["status"] in ("sent", "delivered")  # how far it got before, as history reports it


def test_a_user_who_talks_to_itself_has_one_conversation(server: ServerProcess) -> None:
    [alice_id] = server.add_users(1)
    with server.connect(alice_id) as alice:
        note = sent(alice, alice_id, "note to self")
        assert summary(inbox(alice)) == [(alice_id, note, 1)]


def test_a_user_with_no_conversations_gets_an_empty_inbox(server: ServerProcess) -> None:
    [loner_id] = server.add_users(1)
    with server.connect(loner_id) as loner:
        assert inbox(loner) == []
        assert inbox(loner, before=1, limit=5) == []


@pytest.mark.parametrize("fields", [{"limit": 101}, {"limit": 0}, {"limit": "5"}, {"before": "x"}, {"before": 0}])
def test_a_bad_limit_or_before_is_a_bad_request_and_the_socket_stays_open(
    server: ServerProcess, fields: dict[str, Any]
) -> None:
    [user_id] = server.add_users(1)
    with server.connect(user_id) as client:
        client.send({"type": "conversations", **fields})
        error = client.expect_error("bad_request")
        assert error["ref"] == {"type": "conversations"}
        assert inbox(client, limit=100) == []
