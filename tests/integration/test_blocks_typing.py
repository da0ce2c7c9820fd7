"""Blocks and typing against the real server: a blocked sender's message is refused and not stored, typing is
forwarded to every socket of the recipient, rate limited, and never reaches a user who blocked the sender.

Absence is asserted by order, never by waiting: a frame that takes the same path after the one that must not
arrive (sender's actor, router, recipient's actor) arrives first or alone.
"""

from __future__ import annotations

from typing import Any

from tests.helpers.chat import history
from tests.helpers.client import Client
from tests.helpers.server import ServerFactory, ServerProcess

NO_BLOCKS_CACHE = {"REALTIME_DATABASE_BLOCKS_CACHE_SECONDS": "0"}


def frames_until(client: Client, frame_type: str, **fields: Any) -> list[dict[str, Any]]:
    """Every frame received before the first of `frame_type` with `fields`, in order, that one last."""
    last = client.expect(frame_type, **fields)
    before, client.received[:] = list(client.received), []
    return [*before, last]


def test_a_message_to_a_user_who_blocked_the_sender_is_forbidden_and_not_stored(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    server.block(bob_id, alice_id)  # before anything reads bob's blocks, so no cached read predates it
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        alice.message(bob_id, "let me in", "a-1")
        error = alice.expect_error("forbidden")
        assert error["ref"] == {"type": "message", "clientMsgId": "a-1"}
        assert history(alice, bob_id) == [] and history(bob, alice_id) == []

        bob.message(alice_id, "the blocker may still write", "b-1")  # only messages to the blocker are refused
        reply = bob.expect("message_sent", clientMsgId="b-1")["messageId"]
        assert alice.expect("message", messageId=reply)["from"] == bob_id
        assert [m["messageId"] for m in history(bob, alice_id)] == [reply]


def test_a_block_keeps_the_history_and_an_unblock_lets_messages_through_again(make_server: ServerFactory) -> None:
    server = make_server(NO_BLOCKS_CACHE).start()  # every block and unblock takes effect at once
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        alice.message(bob_id, "before the block", "a-1")
        kept = alice.expect("message_sent", clientMsgId="a-1")["messageId"]
        bob.expect("message", messageId=kept)

        server.block(bob_id, alice_id)
        alice.message(bob_id, "after the block", "a-2")
        assert alice.expect_error("forbidden")["ref"] == {"type": "message", "clientMsgId": "a-2"}
        assert [m["messageId"] for m in history(bob, alice_id)] == [kept]

        server.unblock(bob_id, alice_id)
        alice.message(bob_id, "welcome back", "a-3")
        sent = alice.expect("message_sent", clientMsgId="a-3")["messageId"]
        assert bob.expect("message", messageId=sent)["content"] == "welcome back"
        assert [m["messageId"] for m in history(bob, alice_id)] == [kept, sent]


def test_typing_reaches_every_socket_of_the_recipient_and_the_sender_hears_nothing(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice, server.connect(bob_id) as laptop, server.connect(bob_id) as phone:
        alice.send({"type": "typing", "to": bob_id})
        for socket in (laptop, phone):
            assert socket.expect("typing") == {"type": "typing", "from": alice_id, "typing": True}
        alice.send({"type": "ping"})
        assert frames_until(alice, "pong") == [{"type": "pong"}]  # no ack, no error, no echo


def test_a_second_start_within_two_seconds_is_dropped_and_a_stop_passes_once_after_a_start(
    server: ServerProcess,
) -> None:
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        for typing in (False, True, True, False, False, True):
            alice.send({"type": "typing", "to": bob_id, "typing": typing})
        alice.message(bob_id, "marker", "t-1")  # the same path as typing, after it
        received = frames_until(bob, "message", clientMsgId="t-1")
        # a stop before any start, a second start and a second stop are dropped; the last start is within 2 s of
        # the first, so it is dropped too, although a stop came between them
        assert [frame for frame in received if frame["type"] == "typing"] == [
            {"type": "typing", "from": alice_id, "typing": True},
            {"type": "typing", "from": alice_id, "typing": False},
        ]


def test_typing_to_a_user_who_blocked_the_sender_is_dropped(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    server.block(bob_id, alice_id)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        bob.message(alice_id, "read me", "b-1")
        message_id = alice.expect("message", clientMsgId="b-1")["messageId"]

        alice.send({"type": "typing", "to": bob_id})
        alice.send({"type": "message_read", "messageId": message_id})  # the marker: after the typing, same path
        received = frames_until(bob, "message_read", messageId=message_id)
        assert "typing" not in [frame["type"] for frame in received], received


def test_typing_from_a_blocker_to_the_user_it_blocked_is_dropped(server: ServerProcess) -> None:
    """The contract: typing is not shown to a blocked user."""
    alice_id, bob_id = server.add_users(2)
    server.block(alice_id, bob_id)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        alice.send({"type": "typing", "to": bob_id})
        alice.message(bob_id, "the blocker may still write", "a-1")  # the marker: after the typing, same path
        received = frames_until(bob, "message", clientMsgId="a-1")
        assert "typing" not in [frame["type"] for frame in received], received


def test_typing_to_an_offline_or_unknown_user_is_dropped_silently(server: ServerProcess) -> None:
    alice_id, offline_id = server.add_users(2)
    with server.connect(alice_id) as alice:
        alice.send({"type": "typing", "to": offline_id})
        alice.send({"type": "typing", "to": 9_000_000_001, "typing": False})
        alice.send({"type": "ping"})
        assert frames_until(alice, "pong") == [{"type": "pong"}]


def test_a_bad_typing_frame_is_a_bad_request_and_the_socket_stays(server: ServerProcess) -> None:
    (alice_id,) = server.add_users(1)
    with server.connect(alice_id) as alice:
        for frame in ({"type": "typing"}, {"type": "typing", "to": 0}, {"type": "typing", "to": 2, "typing": "yes"}):
            alice.send(frame)
            assert alice.expect_error("bad_request")["ref"] == {"type": "typing"}
        alice.assert_alive()
