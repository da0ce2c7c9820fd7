"""Attacks on the social-chat frames (`typing`, `message_delete`, `conversations`) and on `notification_read` with
a list of ids, against a real server on the DEFAULT [limits]: a script sending one of them as fast as it can is
refused, then closed with 4429; the server's memory stays bounded, another user's round trips stay low, and the
frames that reach a third user are bounded by the contract's own rate (typing: one start and one stop per 2 s).
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable

import pytest

from settings import SCHEMA
from storage import MessageDraft
from tests.helpers.attack import Bystander, assert_rss_growth_bounded, flood, rss_kib
from tests.helpers.server import ServerProcess
from tests.helpers.wire import json_frame

ATTACK_SECONDS = 3.0  # the flooder sends for at most this long
CLOSE_DEADLINE = 5.0  # seconds from the first frame to the 4429
TCP_DEADLINE = 5.0  # seconds from the 4429 to the end of the TCP connection
FLOOD_FRAMES = 20_000  # frames the flooder sends at most
INBOX_SIZE = 150  # conversations of the attacker: every `conversations` answer is a full page
UNKNOWN_IDS = 9_000_000_000  # message ids from here on do not exist
TYPING_INTERVAL = 2.0  # the contract: at most one start forwarded per sender and recipient in this time
DEFAULT = {name: key.parse(key.default) for name, key in SCHEMA["limits"].items()}

Frames = Callable[[ServerProcess, int, int], list[bytes]]  # (server, attacker, partner) -> the flood


def typing_on_and_off(server: ServerProcess, attacker: int, partner: int) -> list[bytes]:
    """Starts and stops to one online user, alternating: every stop follows a start."""
    return [json_frame({"type": "typing", "to": partner, "typing": n % 2 == 0}) for n in range(FLOOD_FRAMES)]


def typing_to_everyone(server: ServerProcess, attacker: int, partner: int) -> list[bytes]:
    """A start to a different user each time (unknown ids: nobody to tell, each a new entry to remember)."""
    return [json_frame({"type": "typing", "to": 8_000_000_000 + n}) for n in range(FLOOD_FRAMES)]


def deleting_others_messages(server: ServerProcess, attacker: int, partner: int) -> list[bytes]:
    """Deletes of the partner's message (forbidden) and of ids that do not exist (not found), alternating."""
    [result] = server.storage.store_messages([MessageDraft(partner, attacker, "mine, not yours", None, 1)])
    mine = result.message.id
    return [
        json_frame({"type": "message_delete", "messageId": mine if n % 2 else UNKNOWN_IDS + n})
        for n in range(FLOOD_FRAMES)
    ]


def full_inbox_pages(server: ServerProcess, attacker: int, partner: int) -> list[bytes]:
    """The largest inbox page, again and again, by a user with more conversations than a page holds."""
    peers = server.add_users(INBOX_SIZE)
    server.storage.store_messages([MessageDraft(peer, attacker, "hello", None, 1) for peer in peers])
    return [json_frame({"type": "conversations", "limit": 100})] * FLOOD_FRAMES


def reading_full_id_lists(server: ServerProcess, attacker: int, partner: int) -> list[bytes]:
    """`notification_read` with the longest list the contract allows, of ids that are nobody's."""
    ids = [UNKNOWN_IDS + n for n in range(100)]
    return [json_frame({"type": "notification_read", "notificationIds": ids})] * FLOOD_FRAMES


FLOODS = [typing_on_and_off, typing_to_everyone, deleting_others_messages, full_inbox_pages, reading_full_id_lists]


@pytest.mark.parametrize("flooding", FLOODS, ids=lambda flooding: flooding.__name__)
def test_a_script_flooding_a_social_frame_is_refused_then_closed_with_4429_and_costs_little(
    server: ServerProcess, flooding: Frames
) -> None:
    attacker_id, partner_id, bystander_id = server.add_users(3)
    frames = flooding(server, attacker_id, partner_id)
    memory_before = rss_kib(server.process.pid)

    with Bystander(server, bystander_id) as bystander, server.connect(partner_id) as partner:
        attack = flood(server, attacker_id, frames, ATTACK_SECONDS, CLOSE_DEADLINE + TCP_DEADLINE)
        partner.assert_alive()  # after everything the flood made the server send it
        told = [frame for frame in partner.received if frame["type"] == "typing"]

    attack.assert_closed(4429, CLOSE_DEADLINE, TCP_DEADLINE)
    texts = attack.texts
    refused = [frame for frame in texts if frame["type"] == "error" and frame["code"] == "rate_limited"]
    # the user's limits refuse the strikes allowed, then close; when each frame costs the user's actor a query,
    # the socket's own frame limit (checked as frames arrive, before the actor) may close it first
    assert len(refused) in (0, DEFAULT["rate_limit_strikes"] + 1), len(refused)
    served = len([frame for frame in texts if frame["type"] != "message"]) - len(refused)
    assert served <= DEFAULT["frame_burst"] + DEFAULT["frames_per_second"] * attack.closed_after
    assert_answers(flooding, texts, closed_by_user_limits=bool(refused))
    # one start and one stop per interval reach the partner, however many the attacker sent
    starts = [frame for frame in told if frame["typing"]]
    assert len(starts) <= 1 + attack.closed_after / TYPING_INTERVAL, told
    assert len(told) - len(starts) <= len(starts), told
    bystander.assert_served()
    assert_rss_growth_bounded(server, memory_before)
    print(
        f"{flooding.__name__}: {attack.sent} frames sent, {served} served, 4429 after {attack.closed_after:.2f} s,"
        f" partner told {len(told)} typing, bystander p99 {bystander.p99() * 1000:.1f} ms, server peak growth"
        f" {(rss_kib(server.process.pid, 'VmHWM') - memory_before) / 1024:.1f} MiB"
    )


def assert_answers(flooding: Frames, texts: list[dict[str, Any]], closed_by_user_limits: bool) -> None:
    """What the served frames were answered: typing nothing, a delete its error, a page the full page (the
    messages the attacker had not received yet come first, on connect).

    The user's limits refuse only after serving a burst, so then there are answers to check. The socket's own
    frame limit, counted as frames arrive, may close it before the user's actor has answered any."""
    answers = [
        frame
        for frame in texts
        if frame["type"] != "message" and not (frame["type"] == "error" and frame["code"] == "rate_limited")
    ]
    if flooding in (typing_on_and_off, typing_to_everyone):
        assert answers == []
        return
    if closed_by_user_limits:
        assert answers, texts[:3]
    if flooding is deleting_others_messages:
        # each served delete is refused for what it names: the partner's message, or an id that does not exist
        for frame in answers:
            named = int(re.search(r"message (\d+)", frame["message"]).group(1))
            expected = "not_found" if named >= UNKNOWN_IDS else "forbidden"
            assert (frame["code"], frame["ref"]) == (expected, {"type": "message_delete"}), frame
    elif flooding is reading_full_id_lists:  # none of the ids is the attacker's: nothing marked, nothing echoed
        assert all(
            (frame["type"], frame["code"], frame["ref"]) == ("error", "not_found", {"type": "notification_read"})
            for frame in answers
        ), answers[:3]
    else:
        assert all(len(frame["conversations"]) == 100 for frame in answers), answers[:1]


def test_typing_alternating_with_messages_reaches_the_recipient_at_the_contract_rate(server: ServerProcess) -> None:
    """A user who types and sends in quick turns (a stop on each send) tells the recipient at most one start and
    one stop per 2 s, and every message arrives."""
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        started = time.monotonic()
        for n in range(40):
            alice.send({"type": "typing", "to": bob_id})
            alice.message(bob_id, f"line {n}", f"line-{n}")
            alice.send({"type": "typing", "to": bob_id, "typing": False})
            alice.expect("message_sent", clientMsgId=f"line-{n}")
        alice.message(bob_id, "the end", "end")
        bob.expect("message", clientMsgId="end")
        elapsed = time.monotonic() - started
        told = [frame["typing"] for frame in bob.received if frame["type"] == "typing"]
        messages = [frame["clientMsgId"] for frame in bob.received if frame["type"] == "message"]
    assert messages == [f"line-{n}" for n in range(40)]
    assert 1 <= told.count(True) <= 1 + elapsed / TYPING_INTERVAL, told
    assert told == [True, False] * told.count(True), "a stop follows each start forwarded, and nothing else"
