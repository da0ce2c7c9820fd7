"""A client that stops reading: the server closes it with 1013 once its queue is full, nobody else waits
on it, and nothing it missed is lost."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from tests.helpers.attack import rss_kib
from tests.helpers.chat import message_frames
from tests.helpers.client import Client
from tests.helpers.server import SCRIPTED_CLIENT_LIMITS, ServerFactory, ServerProcess
from tests.helpers.wire import RawSocket

QUEUE_FRAMES = 16
CONTENT = "x" * 4000
# 4,000-byte frames: 16 MB, more than the kernel's socket buffers and the queue can hold
MESSAGES = 4000
WINDOW = 100


def assert_closed_as_too_slow(server: ServerProcess, slow: RawSocket) -> None:
    """The slow socket's stream ends with the close frame 1013 after what the kernel buffers held; or, if the
    client woke up after the close deadline (web.ws.transport) and the frame never fitted in the kernel's buffer,
    with the end of the stream, once the server logged that it closed a socket as too slow."""
    try:
        code, reason = slow.expect_close(timeout=TIMEOUT)
    except EOFError:
        assert b"closing as too slow" in server.log_path.read_bytes(), "the stream ended without a 1013"
        return
    assert code == 1013, (code, reason)


def test_a_client_that_stops_reading_is_closed_with_1013_and_loses_nothing(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_LIMITS_SEND_QUEUE_FRAMES": str(QUEUE_FRAMES), **SCRIPTED_CLIENT_LIMITS}).start()
    slow_id, sender_id, a_id, b_id = server.add_users(4)
    slow = RawSocket(server.ws_port)
    slow.connect(server, slow_id)

    with server.connect(sender_id) as sender, server.connect(a_id) as a, server.connect(b_id) as b:
        stored = []
        for start in range(0, MESSAGES, WINDOW):
            for n in range(start, start + WINDOW):
                sender.message(slow_id, CONTENT, f"s-{n}")
            stored += [
                sender.expect("message_sent", clientMsgId=f"s-{n}")["messageId"] for n in range(start, start + WINDOW)
            ]
            # the slow reader holds up nobody: another pair keeps chatting while its queue fills
            a.message(b_id, f"hello {start}", f"ab-{start}")
            b.expect("message", clientMsgId=f"ab-{start}", timeout=5)

        # the client wakes up: it reads what the kernel buffers held, then the close frame
        assert_closed_as_too_slow(server, slow)
        pushed_before_close = [frame["messageId"] for frame in slow.texts if frame["type"] == "message"]
        slow.close()
        assert len(pushed_before_close) < MESSAGES
        sender.assert_alive()

    # what the slow client missed is still stored and arrives, in order, when it reconnects with a reader
    with server.connect(slow_id) as again:
        backlog = [again.expect("message", timeout=30)["messageId"] for _ in range(MESSAGES - len(pushed_before_close))]
    assert sorted(set(pushed_before_close) | set(backlog)) == sorted(stored)
    assert backlog == sorted(backlog)


# ---------------------------------------------------------------- a slow reader among fifty chatting users

PAIRS = 25  # 50 users chatting in pairs
FLOOD_QUEUE_FRAMES = 64
FLOOD_CONTENT = "y" * 2000  # ~2 KB frames
FLOOD_WINDOW = 100
FLOOD_CAP = 8000  # ~17 MB: far more than the slow socket's buffers and its 64-frame queue hold
SLOW_RCVBUF = 64 * 1024
CHAT_BURST = 2  # messages each way per round
CHAT_PACE = 0.05  # seconds between a pair's rounds while the flood runs
MIN_ROUNDS = 5
MAX_ROUNDS = 2000
LATENCY_BOUND = 2.0  # send-to-receive, seconds: generous, the point is that nobody waits on the slow client
RSS_GROWTH_BOUND_KIB = 64 * 1024
TIMEOUT = 30.0


class _ServerLog:
    """What the server logged since the last look: the flood stops early once the server says it closed a
    socket as too slow (only a shortcut: FLOOD_CAP overflows any socket, and the 1013 is checked on the wire)."""

    def __init__(self, server: ServerProcess):
        self.path = server.log_path
        self.offset = self.path.stat().st_size

    def closed_a_slow_socket(self) -> bool:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read()
        self.offset += len(text)
        return b"closing as too slow" in text


@dataclass
class _Direction:
    """One direction of a pair's conversation, as the sender sent it and the recipient got it."""

    sent: list[str] = field(default_factory=list)  # clientMsgIds in the order sent
    sent_at: dict[str, float] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)  # clientMsgId -> messageId from message_sent
    received: list[dict[str, Any]] = field(default_factory=list)  # message frames in arrival order
    latencies: list[float] = field(default_factory=list)


def _take_receipts(client: Client) -> list[int]:
    """The messageIds of the `message_delivered` frames received so far, taken so that the client's buffer of
    unread frames stays short."""
    return [frame["messageId"] for frame in client.take_all("message_delivered", within=0)]


def _chat_pair(
    index: int, a: Client, a_id: int, b: Client, b_id: int, flood_over: threading.Event, flooding: threading.Event
) -> tuple[_Direction, _Direction, int]:
    """Rounds of CHAT_BURST messages each way until the flood is over; returns both directions and how many
    rounds ran entirely while the flood did."""
    ab, ba = _Direction(), _Direction()
    rounds = during_flood = 0
    while (rounds < MIN_ROUNDS or not flood_over.is_set()) and rounds < MAX_ROUNDS:
        started_during_flood = flooding.is_set()
        for sender, recipient_id, direction, name in ((a, b_id, ab, "ab"), (b, a_id, ba, "ba")):
            for n in range(CHAT_BURST):
                client_msg_id = f"p{index}-{name}-{rounds}-{n}"
                direction.sent.append(client_msg_id)
                direction.sent_at[client_msg_id] = time.monotonic()
                sender.message(recipient_id, f"pair {index} {name} round {rounds} #{n} \u20ac", client_msg_id)
        for recipient, direction in ((b, ab), (a, ba)):
            for _ in range(CHAT_BURST):
                frame = recipient.expect("message", timeout=TIMEOUT)
                direction.latencies.append(time.monotonic() - direction.sent_at.get(frame.get("clientMsgId"), 0.0))
                direction.received.append(frame)
        for sender, direction in ((a, ab), (b, ba)):
            for client_msg_id in direction.sent[-CHAT_BURST:]:
                ack = sender.expect("message_sent", timeout=TIMEOUT, clientMsgId=client_msg_id)
                direction.ids[client_msg_id] = ack["messageId"]
            _take_receipts(sender)
        rounds += 1
        if started_during_flood and flooding.is_set():
            during_flood += 1
        if not flood_over.is_set():
            flood_over.wait(CHAT_PACE)  # pacing the chat while the flood runs, not waiting for an event
    return ab, ba, during_flood


def _conversation(client: Client, with_user: int) -> list[dict[str, Any]]:
    """The whole stored conversation, oldest first, read page by page."""
    messages: list[dict[str, Any]] = []
    before = None
    while True:
        request: dict[str, Any] = {"type": "history", "with": with_user, "limit": 100}
        if before is not None:
            request["before"] = before
        client.send(request)
        page = client.expect("history", timeout=TIMEOUT, **{"with": with_user})["messages"]
        messages = page + messages
        if len(page) < 100:
            return messages
        before = page[0]["messageId"]


def test_a_slow_reader_among_fifty_chatting_users_is_closed_alone_with_bounded_memory(
    make_server: ServerFactory,
) -> None:
    environment = {"REALTIME_LIMITS_SEND_QUEUE_FRAMES": str(FLOOD_QUEUE_FRAMES), **SCRIPTED_CLIENT_LIMITS}
    server = make_server(environment).start()
    assert server.process is not None
    pid = server.process.pid
    slow_id, flooder_id, *chatter_ids = server.add_users(2 + 2 * PAIRS)
    pairs = [(chatter_ids[2 * i], chatter_ids[2 * i + 1]) for i in range(PAIRS)]

    with ExitStack() as stack:
        flooder = stack.enter_context(server.connect(flooder_id))
        clients = {user_id: stack.enter_context(server.connect(user_id)) for user_id in chatter_ids}
        slow = stack.enter_context(RawSocket(server.ws_port))
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
        slow.connect(server, slow_id)  # from here on it reads nothing until the flood is over
        log = _ServerLog(server)
        rss_before = rss_kib(pid)

        flood_over, flooding = threading.Event(), threading.Event()
        with ThreadPoolExecutor(max_workers=PAIRS) as pool:
            chats = [
                pool.submit(_chat_pair, i, clients[a_id], a_id, clients[b_id], b_id, flood_over, flooding)
                for i, (a_id, b_id) in enumerate(pairs)
            ]
            # the flooder writes to the slow user until the server gives up on its socket
            stored: list[int] = []
            delivered: set[int] = set()
            gave_up = False  # the server said it closed the slow socket
            flooding.set()
            try:
                while not gave_up and len(stored) < FLOOD_CAP:
                    start = len(stored)
                    for n in range(start, start + FLOOD_WINDOW):
                        flooder.message(slow_id, f"{n:05d} {FLOOD_CONTENT}", f"s-{n}")
                    for n in range(start, start + FLOOD_WINDOW):
                        ack = flooder.expect("message_sent", timeout=TIMEOUT, clientMsgId=f"s-{n}")
                        stored.append(ack["messageId"])
                    delivered.update(_take_receipts(flooder))
                    gave_up = log.closed_a_slow_socket()
            finally:
                flooding.clear()
                flood_over.set()
            rss_after = rss_kib(pid)
            results = [chat.result(timeout=120) for chat in chats]

        # nobody waited on the slow client: every pair's messages arrived exactly once, in order, and soon
        rounds_during_flood = 0
        worst = 0.0
        for index, ((a_id, b_id), (ab, ba, during_flood)) in enumerate(zip(pairs, results)):
            rounds_during_flood += during_flood
            for direction, sender_id, recipient_id in ((ab, a_id, b_id), (ba, b_id, a_id)):
                got = [(f["clientMsgId"], f["messageId"], f["from"], f["to"]) for f in direction.received]
                want = [(c, direction.ids[c], sender_id, recipient_id) for c in direction.sent]
                assert got == want, f"pair {index}: received {got[:10]}..., sent {want[:10]}..."
                ids = [direction.ids[c] for c in direction.sent]
                assert ids == sorted(ids) and len(set(ids)) == len(ids), f"pair {index}: ids out of order {ids}"
                worst = max(worst, *direction.latencies)
            # stored once each, and nothing else
            stored_pair = [m["messageId"] for m in _conversation(clients[a_id], b_id)]
            assert stored_pair == sorted(list(ab.ids.values()) + list(ba.ids.values())), f"pair {index}"
        assert worst < LATENCY_BOUND, f"a chat message took {worst:.2f} s to arrive"
        assert rounds_during_flood >= PAIRS, f"only {rounds_during_flood} chat rounds ran during the flood"
        for user_id, client in clients.items():
            client.assert_alive()
            assert client.close_code is None, (user_id, client.close_code)
            assert message_frames(client) == [], (user_id, client.received[:3])

        # memory stayed bounded while the slow socket's queue filled up and it was closed
        growth = rss_after - rss_before
        assert growth < RSS_GROWTH_BOUND_KIB, f"RSS grew by {growth} KiB ({rss_before} -> {rss_after} KiB)"

        # the slow client wakes up: it reads what the kernel buffers held, then the close frame
        assert_closed_as_too_slow(server, slow)
        pushed_before_close = [frame["messageId"] for frame in slow.texts if frame["type"] == "message"]
        slow.close()
        assert 0 < len(pushed_before_close) < len(stored)
        # what it read counts as delivered: wait for those receipts before it reconnects
        delivered.update(_take_receipts(flooder))
        while not set(pushed_before_close) <= delivered:
            delivered.add(flooder.expect("message_delivered", timeout=TIMEOUT)["messageId"])
        flooder.assert_alive()

    # on reconnecting the slow user gets every message it missed, in order, exactly once
    with server.connect(slow_id) as again:
        missed = len(stored) - len(pushed_before_close)
        backlog = [again.expect("message", timeout=TIMEOUT)["messageId"] for _ in range(missed)]
        again.assert_alive()
        assert message_frames(again) == []
    assert pushed_before_close + backlog == stored
