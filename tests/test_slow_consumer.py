"""A client that stops reading: the server closes it with 1013 once its queue is full, nobody else waits
on it, and nothing it missed is lost."""

from __future__ import annotations

from tests.conftest import ServerFactory
from tests.test_websocket_framing import RawSocket

QUEUE_FRAMES = 16
CONTENT = "x" * 4000
# 4,000-byte frames: 16 MB, more than the kernel's socket buffers and the queue can hold
MESSAGES = 4000
WINDOW = 100


def test_a_client_that_stops_reading_is_closed_with_1013_and_loses_nothing(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_LIMITS_SEND_QUEUE_FRAMES": str(QUEUE_FRAMES)}).start()
    slow_id, sender_id, a_id, b_id = server.add_users(4)
    slow = RawSocket(server.ws_port)
    slow.connect(server, slow_id)

    with server.connect(sender_id) as sender, server.connect(a_id) as a, server.connect(b_id) as b:
        stored = []
        for start in range(0, MESSAGES, WINDOW):
            for n in range(start, start + WINDOW):
                sender.message(slow_id, CONTENT, f"s-{n}")
            stored += [sender.expect("message_sent", clientMsgId=f"s-{n}")["messageId"] for n in range(start, start + WINDOW)]
            # the slow reader holds up nobody: another pair keeps chatting while its queue fills
            a.message(b_id, f"hello {start}", f"ab-{start}")
            b.expect("message", clientMsgId=f"ab-{start}", timeout=5)

        # the client wakes up: it reads what the kernel buffers held, then the close frame
        code, reason = slow.expect_close(timeout=30)
        assert code == 1013, (code, reason)
        pushed_before_close = [frame["messageId"] for frame in slow.texts if frame["type"] == "message"]
        slow.close()
        assert len(pushed_before_close) < MESSAGES
        sender.assert_alive()

    # what the slow client missed is still stored and arrives, in order, when it reconnects with a reader
    with server.connect(slow_id) as again:
        backlog = [again.expect("message", timeout=30)["messageId"] for _ in range(MESSAGES - len(pushed_before_close))]
    assert sorted(set(pushed_before_close) | set(backlog)) == sorted(stored)
    assert backlog == sorted(backlog)
