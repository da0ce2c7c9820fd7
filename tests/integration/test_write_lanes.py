"""With several write lanes, one slow write holds up only its own lane (MariaDB: row locks make a write wait)."""

from __future__ import annotations

import pytest

from tests.helpers.server import BACKENDS, ServerFactory

pytestmark = pytest.mark.skipif("mysql" not in BACKENDS, reason="needs the MariaDB backend")


@pytest.mark.parametrize("backend", ["mysql"])
def test_a_sender_blocked_on_a_lock_does_not_hold_up_other_senders(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_DATABASE_WRITE_LANES": "2"}).start()  # lanes chosen by sender id
    users = server.add_users(4)
    blocked_id = next(u for u in users if u % 2 == 0)
    free_id = next(u for u in users if u % 2 == 1)
    recipient_id = next(u for u in users if u not in (blocked_id, free_id))
    holder = server.mysql_connection(autocommit=False)
    try:
        with holder.cursor() as cursor:  # an uncommitted row with the same idempotency key holds its lock
            cursor.execute(
                "INSERT INTO realtime_messages (sender_id, recipient_id, content, client_msg_id, status, created_at)"
                " VALUES (%s, %s, 'held', 'held-key', 'sent', 0)",
                (blocked_id, recipient_id),
            )
        with server.connect(blocked_id) as blocked, server.connect(free_id) as free, server.connect(
            recipient_id
        ) as recipient:
            blocked.message(recipient_id, "waits for the lock", "held-key")
            for n in range(5):
                free.message(recipient_id, f"flows {n}", f"free-{n}")
                free.expect("message_sent", clientMsgId=f"free-{n}")
                assert recipient.expect("message")["content"] == f"flows {n}"
            recipient.send({"type": "history", "with": free_id})
            assert len(recipient.expect("history")["messages"]) == 5
            blocked.assert_no_frame("message_sent")

            holder.rollback()
            sent = blocked.expect("message_sent", clientMsgId="held-key")
            assert recipient.expect("message", messageId=sent["messageId"])["content"] == "waits for the lock"
    finally:
        holder.close()
