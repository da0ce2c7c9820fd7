"""Attack: several accounts page back through long conversations as fast as the server answers, on the DEFAULT
settings, while another user chats. A page costs a bounded range scan whatever the conversation's length
(tests/integration/test_storage.py shows the plans), so the chatting user's send->ack latency stays low."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.helpers.attack import Bystander, assert_rss_growth_bounded, rss_kib
from tests.helpers.server import ServerProcess

ATTACKERS = 4
CONVERSATION = 5000  # messages between each attacker and its partner
CONTENT = "h" * 200
PAGE = 100
MAX_PAGES = 400  # per attacker: within the default frame burst (500), so no page is refused
ATTACK_SECONDS = 3.0
ACK_INTERVAL = 0.05  # seconds between the chatting user's messages


def _seed_conversations(server: ServerProcess, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    """CONVERSATION messages per pair, alternating sides, inserted in one transaction; their ids, oldest first."""
    rows = [
        (*(pair if n % 2 else pair[::-1]), f"{CONTENT} {n}", "read", n) for n in range(CONVERSATION) for pair in pairs
    ]
    sql = (
        "INSERT INTO realtime_messages (sender_id, recipient_id, content, status, created_at)"
        " VALUES (%s, %s, %s, %s, %s)"
    )
    storage = server.storage
    storage.engine.transaction(lambda session: session.execute_many(sql, rows), write=True)
    conversations: dict[tuple[int, int], list[int]] = {}
    for pair in pairs:
        found = storage.engine.transaction(
            lambda session, pair=pair: session.query(
                "SELECT id FROM realtime_messages WHERE sender_id IN (%s, %s) AND recipient_id IN (%s, %s) ORDER BY id",
                (*pair, *pair),
            )
        )
        conversations[pair] = [int(row[0]) for row in found]
    return conversations


def _page_back(server: ServerProcess, user_id: int, partner_id: int, ids: list[int], stop: threading.Event) -> int:
    """Page back through the conversation as fast as the pages come, checking each; the pages read."""
    pages, before = 0, None
    with server.connect(user_id) as client:
        while pages < MAX_PAGES and not stop.is_set():
            request = {"type": "history", "with": partner_id, "limit": PAGE}
            client.send(request if before is None else {**request, "before": before})
            page = [message["messageId"] for message in client.expect("history")["messages"]]
            end = ids.index(before) if before else len(ids)
            assert page == ids[max(0, end - PAGE) : end], f"wrong page before {before}"
            pages += 1
            before = page[0] if end > PAGE else None  # from the newest again once the oldest page was read
    return pages


class AckTimer(Bystander):
    """A user who sends a message every ACK_INTERVAL and times each message -> message_sent."""

    def __init__(self, server: ServerProcess, user_id: int, partner_id: int):
        super().__init__(server, user_id, ACK_INTERVAL)
        self._partner_id = partner_id

    def round_trip(self, count: int) -> None:
        self._client.message(self._partner_id, f"still here {count}", f"ack-{count}")
        self._client.expect("message_sent", clientMsgId=f"ack-{count}")


def test_accounts_paging_long_conversations_fast_leave_another_users_send_to_ack_latency_low(
    server: ServerProcess,
) -> None:
    users = server.add_users(2 * ATTACKERS + 3)
    attackers, partners = users[:ATTACKERS], users[ATTACKERS : 2 * ATTACKERS]
    chatter_id, chat_partner_id, bystander_id = users[2 * ATTACKERS :]
    conversations = _seed_conversations(server, list(zip(attackers, partners)))
    memory_before = rss_kib(server.process.pid)
    stop = threading.Event()

    with Bystander(server, bystander_id) as bystander, AckTimer(server, chatter_id, chat_partner_id) as chat:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=ATTACKERS) as pool:
            runs = [
                pool.submit(_page_back, server, attacker, partner, conversations[(attacker, partner)], stop)
                for attacker, partner in zip(attackers, partners)
            ]
            stop.wait(ATTACK_SECONDS)
            stop.set()
            pages = sum(run.result(timeout=30) for run in runs)
        elapsed = time.monotonic() - started

    chat.assert_served()  # send->ack p99 under BYSTANDER_P99_BOUND
    print(
        f"history attack: {pages} pages of {PAGE} in {elapsed:.1f} s ({pages / elapsed:.0f}/s) from {ATTACKERS}"
        f" accounts, conversations of {CONVERSATION}; send->ack p50 {statistics.median(chat.round_trips) * 1000:.1f}"
        f" ms, p99 {chat.p99() * 1000:.1f} ms, worst {max(chat.round_trips) * 1000:.1f} ms; ping p99"
        f" {bystander.p99() * 1000:.1f} ms; server peak growth"
        f" {(rss_kib(server.process.pid, 'VmHWM') - memory_before) / 1024:.1f} MiB"
    )
    assert pages >= ATTACKERS * 10, f"only {pages} pages served"
    bystander.assert_served()
    assert_rss_growth_bounded(server, memory_before)
