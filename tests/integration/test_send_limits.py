"""Attacks on the per-user send limits, against a real server on the DEFAULT [limits].

One user floods messages as fast as it can: it is refused, then closed with
4429, stores no more than its burst, costs the log one line, and another
user's round trips stay low. One user sends content over its byte budget:
refused, nothing of it stored, the socket stays open.
"""

from __future__ import annotations

import time

from settings import SCHEMA
from tests.helpers.attack import Bystander, assert_rss_growth_bounded, flood, rss_kib
from tests.helpers.server import ServerProcess
from tests.helpers.wire import json_frame

ATTACK_SECONDS = 3.0  # the flooder sends for at most this long
CLOSE_DEADLINE = 5.0  # seconds from the first frame to the 4429
TCP_DEADLINE = 5.0  # seconds from the 4429 to the end of the TCP connection
FLOOD_FRAMES = 20_000  # frames the flooder sends at most
DEFAULT = {name: key.parse(key.default) for name, key in SCHEMA["limits"].items()}


def _stored(server: ServerProcess, sender_id: int) -> tuple[int, int]:
    """(messages, content bytes) stored from `sender_id`."""
    rows = server.storage.engine.transaction(
        lambda session: session.query("SELECT content FROM realtime_messages WHERE sender_id = %s", (sender_id,))
    )
    return len(rows), sum(len(content.encode("utf-8")) for (content,) in rows)


def test_a_script_flooding_messages_is_refused_then_closed_with_4429_stores_its_burst_and_logs_once(
    server: ServerProcess,
) -> None:
    attacker_id, partner_id, bystander_id = server.add_users(3)
    frames = [
        json_frame({"type": "message", "to": partner_id, "content": f"spam {n}", "clientMsgId": f"flood-{n}"})
        for n in range(FLOOD_FRAMES)
    ]
    log_lines_before = len(server.log_path.read_text(errors="replace").splitlines())
    memory_before = rss_kib(server.process.pid)

    with Bystander(server, bystander_id) as bystander:
        attack = flood(server, attacker_id, frames, ATTACK_SECONDS, CLOSE_DEADLINE + TCP_DEADLINE)

    attack.assert_closed(4429, CLOSE_DEADLINE, TCP_DEADLINE)
    texts = attack.texts
    refused = [frame for frame in texts if frame["type"] == "error"]
    acknowledged = [frame for frame in texts if frame["type"] == "message_sent"]
    assert refused and {frame["code"] for frame in refused} == {"rate_limited"}
    assert refused[0]["ref"]["type"] == "message" and refused[0]["ref"]["clientMsgId"].startswith("flood-")
    # at most the message burst, plus what the rate refilled while the attack lasted
    stored, _ = _stored(server, attacker_id)
    allowed = DEFAULT["message_burst"] + DEFAULT["messages_per_second"] * attack.closed_after
    # (those stored after the close was queued are not acknowledged: the client sends them again, idempotently)
    assert len(acknowledged) <= stored <= allowed, (len(acknowledged), stored, allowed)
    assert stored >= DEFAULT["message_burst"]  # the burst itself is served
    assert len(refused) == DEFAULT["rate_limit_strikes"] + 1  # the strikes allowed, then the one that closes
    # one log line for the socket closed, however many frames followed it
    new_lines = server.log_path.read_text(errors="replace").splitlines()[log_lines_before:]
    over_limit = [line for line in new_lines if "over the rate limit" in line]
    assert len(over_limit) == 1, over_limit[:5]
    assert len(new_lines) < 20, new_lines[:20]
    assert attack.sent > len(texts), "the flood went on after the close"
    bystander.assert_served()
    assert_rss_growth_bounded(server, memory_before)
    print(
        f"flood: {attack.sent} frames sent, {stored} stored, {len(refused)} refused,"
        f" 4429 after {attack.closed_after:.2f} s, TCP closed {attack.ended_after:.2f} s later,"
        f" {len(new_lines)} log lines, bystander p99 {bystander.p99() * 1000:.1f} ms,"
        f" server peak growth {(rss_kib(server.process.pid, 'VmHWM') - memory_before) / 1024:.1f} MiB"
    )


def test_content_over_the_byte_budget_is_refused_stores_nothing_and_the_socket_stays_open(
    server: ServerProcess,
) -> None:
    sender_id, recipient_id = server.add_users(2)
    largest = "😀" * DEFAULT["max_content_chars"]  # four bytes a character: the most one message can store
    size = len(largest.encode("utf-8"))
    count = 12  # far more than the budget holds: the 9th needs 1.6 s of refill, the 12th 7.5 s
    with server.connect(sender_id) as sender, server.connect(recipient_id) as recipient:
        started = time.monotonic()
        for n in range(count):
            sender.message(recipient_id, largest, f"big-{n}")
        # a refusal is written at once, in frame order, so every one of them is in before the pong
        sender.send({"type": "ping"})
        sender.expect("pong")
        elapsed = time.monotonic() - started
        refused = [frame for frame in sender.received if frame["type"] == "error"]
        assert refused, "every message was stored"
        for frame in refused:
            assert frame["code"] == "rate_limited" and frame["ref"]["type"] == "message", frame
        refused_ids = {frame["ref"]["clientMsgId"] for frame in refused}
        stored_ids = [f"big-{n}" for n in range(count) if f"big-{n}" not in refused_ids]
        for client_msg_id in stored_ids:
            sender.expect("message_sent", clientMsgId=client_msg_id)
        # the first messages fill the burst; the rest only as the rate refills it
        in_burst = DEFAULT["content_bytes_burst"] // size
        assert stored_ids[:in_burst] == [f"big-{n}" for n in range(in_burst)]
        assert len(stored_ids) * size <= DEFAULT["content_bytes_burst"] + DEFAULT["content_bytes_per_second"] * elapsed
        stored, stored_bytes = _stored(server, sender_id)
        assert (stored, stored_bytes) == (len(stored_ids), len(stored_ids) * size)
        delivered = [recipient.expect("message")["clientMsgId"] for _ in stored_ids]
        assert delivered == stored_ids
        recipient.assert_no_frame("message", within=0.3)

        # the socket is still open, and what fits in the budget left still passes
        sender.assert_alive()
        sender.message(recipient_id, "short", "small-1")
        sender.expect("message_sent", clientMsgId="small-1")
        assert sender.close_code is None


def test_closing_every_socket_and_reconnecting_does_not_refill_the_buckets(server: ServerProcess) -> None:
    sender_id, recipient_id = server.add_users(2)
    burst = DEFAULT["message_burst"]
    sockets_before = server.health()[1]["sockets"]
    with server.connect(sender_id) as sender:
        for n in range(burst):
            sender.message(recipient_id, "burst", f"burst-{n}")
        sender.expect("message_sent", clientMsgId=f"burst-{burst - 1}")
        spent_at = time.monotonic()
    # the user's last socket closed, so its actor stopped; the limiter did not go with it
    server.wait_health(lambda _, body: body["sockets"] == sockets_before, "the sender's socket gone")
    again = 20  # refused unless 2 s went by: each takes a tenth of a second to come back
    with server.connect(sender_id) as sender:
        for n in range(again):
            sender.message(recipient_id, "again", f"again-{n}")
        sender.send({"type": "ping"})
        sender.expect("pong")
        refused = [frame for frame in sender.received if frame["type"] == "error"]
        waited = time.monotonic() - spent_at
        assert len(refused) >= again - DEFAULT["messages_per_second"] * waited - 1, (len(refused), waited)
        assert refused and {frame["code"] for frame in refused} == {"rate_limited"}
