"""Operations against the real process: `/metrics` and `/healthz`, the log, graceful shutdown and kill -9
under traffic, and notify calls while the service restarts.

Traffic comes from `Traffic` threads (tests/helpers/operations.py): each owns one socket, keeps a few
messages with clientMsgIds in flight (or only reads, for a recipient) and records every answer, so that
a test can hold what the clients were promised against what the database holds.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import struct
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from tests.helpers.notifications import notify, post_of
from tests.helpers.operations import TIMEOUT, Scrape, assert_promises_kept, start_traffic, stored_messages
from tests.helpers.server import SCRIPTED_CLIENT_LIMITS, SECRET, ServerFactory, ServerProcess, wait_until
from tests.helpers.wire import OPCODE_CLOSE, RawSocket

DRAIN_TIMEOUT = 5.0  # [server] drain_timeout of the shutdown tests' servers
QUICK = 3.0  # seconds within which a refused call must be answered
NOTIFY_SECRET = "notify-secret-for-operations-tests-7c1d"


# ---------------------------------------------------------------- the database, read from the test


@contextmanager
def write_lock(server: ServerProcess) -> Iterator[None]:
    """Hold the lock every chat message and notification write needs, from a connection of the test's own."""
    env = server.env
    if env["REALTIME_DATABASE_BACKEND"] == "sqlite":
        connection = sqlite3.connect(env["REALTIME_DATABASE_PATH"], isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")  # one writer at a time: the service's writes wait (up to 10 s)
        try:
            yield
        finally:
            connection.rollback()
            connection.close()
        return
    connection = server.mysql_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLES realtime_messages WRITE, realtime_notifications WRITE")
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("UNLOCK TABLES")
        connection.close()


# ---------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: the connection was refused
    body: bytes
    seconds: float


def timed_notify(server: ServerProcess, **fields: Any) -> Outcome:
    """POST /notify/like; a refused connection is an outcome, any other failure raises."""
    started = time.monotonic()
    try:
        reply = notify(server, "like", **fields)
    except urllib.error.URLError as error:
        if isinstance(error.reason, ConnectionRefusedError):
            return Outcome(None, b"", time.monotonic() - started)
        raise
    return Outcome(reply.status, reply.raw, time.monotonic() - started)


# ---------------------------------------------------------------- metrics and health


def test_metrics_count_what_happened_and_show_the_node_state(server: ServerProcess) -> None:
    alice_id, bob_id = server.add_users(2)
    server.storage.add_follows([(bob_id, alice_id)])
    post_id = post_of(server, alice_id)
    before = Scrape(server)

    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        sent = []
        for n in range(3):
            alice.message(bob_id, f"metered {n}", f"m-{n}")
        for n in range(3):
            sent.append(alice.expect("message_sent", clientMsgId=f"m-{n}")["messageId"])
        for message_id in sent:
            bob.expect("message", messageId=message_id)
            alice.expect("message_delivered", messageId=message_id)
        bob.send({"type": "message_read", "messageId": sent[-1]})
        alice.expect("message_read", messageId=sent[-1])
        alice.send({"type": "history", "with": bob_id})
        alice.expect("history")
        alice.send("this is not JSON")
        alice.expect_error("bad_request")
        with server.client() as intruder:
            intruder.send({"type": "connect", "userId": alice_id, "token": "not-a-token"})
            intruder.expect_error("unauthorized")
            assert intruder.expect_close() == 4401

        like = notify(server, "like", postId=post_id, userId=bob_id)
        assert like.status == 200 and like.json["recipients"] == 1, like.raw
        alice.expect("notification", postId=post_id, notificationType="like")
        post = notify(server, "post", postId=post_id, userId=alice_id)
        assert post.status == 200 and post.json["recipients"] == 1, post.raw
        bob.expect("notification", postId=post_id, notificationType="post")

        after = Scrape(server)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    received = {
        kind: delta("realtime_frames_received_total", type=kind)
        for kind in after.labels("realtime_frames_received", "type")
    }
    assert {kind: n for kind, n in received.items() if n} == {
        "connect": 3, "message": 3, "message_read": 1, "history": 1, "invalid": 1,
    }  # fmt: skip
    sent_frames = {
        kind: delta("realtime_frames_sent_total", type=kind) for kind in after.labels("realtime_frames_sent", "type")
    }
    assert {kind: n for kind, n in sent_frames.items() if n} == {
        "connected": 2, "message_sent": 3, "message": 3, "message_delivered": 3, "message_read": 1,
        "history": 1, "error": 2, "notification": 2,
    }  # fmt: skip
    errors = {code: delta("realtime_errors_total", code=code) for code in after.labels("realtime_errors", "code")}
    assert {code: n for code, n in errors.items() if n} == {"bad_request": 1, "unauthorized": 1}
    closed = {
        code: delta("realtime_sockets_closed_total", code=code)
        for code in after.labels("realtime_sockets_closed", "code")
    }
    assert {code: n for code, n in closed.items() if n} == {"4401": 1}

    assert delta("realtime_message_store_seconds_count") == 3
    assert delta("realtime_message_store_seconds_sum") > 0
    assert delta("realtime_message_delivery_seconds_count") == 3
    assert delta("realtime_batch_items_sum", writer="messages") == 3
    assert 1 <= delta("realtime_batch_items_count", writer="messages") <= 3
    assert delta("realtime_batch_seconds_count", writer="messages") == delta(
        "realtime_batch_items_count", writer="messages"
    )
    assert delta("realtime_batch_items_sum", writer="deliveries") == 3
    for kind in ("like", "post"):
        assert delta("realtime_fanout_recipients_count", kind=kind) == 1, kind
        assert delta("realtime_fanout_recipients_sum", kind=kind) == 1, kind
        assert delta("realtime_fanout_seconds_count", kind=kind) == 1, kind
        assert delta("realtime_fanout_seconds_sum", kind=kind) > 0, kind
        assert delta("realtime_notifications_stored_total", kind=kind) == 1, kind
        assert after.value("realtime_fanouts_running", kind=kind) == 0, kind
    assert delta("realtime_db_pool_wait_seconds_count") > 0
    assert delta("realtime_db_errors_total") == 0

    # gauges read at scrape time: alice and bob were connected at the second scrape
    assert delta("realtime_connected_users") == 2
    assert delta("realtime_open_sockets") == 2
    assert after.value("realtime_database_up") == 1
    assert after.value("realtime_db_in_use") >= 0 and "realtime_db_in_use" in after.families
    assert after.labels("realtime_mailbox_depth", "actor") == {"router", "notifications", "user_max", "user_total"}
    for actor in ("router", "notifications", "user_max", "user_total"):
        assert after.value("realtime_mailbox_depth", actor=actor) >= 0
    assert {"messages", "deliveries"} <= after.labels("realtime_write_backlog", "writer")
    for family in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds", "python_info"):
        assert family in after.families, family
    assert after.value("process_resident_memory_bytes") > 0

    status, body = server.get("/healthz")
    assert status == 200
    assert json.loads(body)["status"] == "ok" and json.loads(body)["database"] == "ok"


def test_close_codes_a_client_chooses_are_counted_as_other(server: ServerProcess) -> None:
    """The server answers a close with the client's code; that must not make a new label value each time."""
    chosen = [3000, 3999, 4000, 4123, 4999]
    before = Scrape(server)
    for code in chosen:
        with RawSocket(server.ws_port) as raw:
            raw.handshake()
            raw.send_frame(OPCODE_CLOSE, struct.pack("!H", code))
            assert raw.expect_close()[0] == code  # echoed to the client all the same
    after = Scrape(server)
    labels = after.labels("realtime_sockets_closed", "code")
    assert not labels & {str(code) for code in chosen}, labels
    other = after.value("realtime_sockets_closed_total", code="other")
    assert other - before.value("realtime_sockets_closed_total", code="other") == len(chosen)


# ---------------------------------------------------------------- logs

JSON_KEYS = {"time", "level", "logger", "message"}
POISON = "poison: a trigger of the test refuses this row"


def install_poison_trigger(server: ServerProcess) -> None:
    """A trigger that makes the database refuse one message content, so that the service meets an error."""
    if server.env["REALTIME_DATABASE_BACKEND"] == "sqlite":
        sql = (
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON realtime_messages"
            f" WHEN NEW.content = '{POISON}' BEGIN SELECT RAISE(ABORT, '{POISON}'); END"
        )
    else:
        sql = (
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON realtime_messages FOR EACH ROW"
            f" IF NEW.content = '{POISON}' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{POISON}'; END IF"
        )
    server.storage.engine.transaction(lambda session: session.execute(sql), write=True)


JSON_LOG = {"REALTIME_LOG_FORMAT": "json", "REALTIME_LOG_LEVEL": "debug", "REALTIME_NOTIFY_SECRET": NOTIFY_SECRET}


def json_records(server: ServerProcess, secrets: list[str]) -> list[dict[str, Any]]:
    """Every line of the server's log as a JSON object with the four keys; no secret anywhere in it."""
    text = server.log_path.read_text(encoding="utf-8")
    for secret in secrets:
        assert secret not in text, "a secret or token is in the log"
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"log line {number} is not JSON: {line!r}") from None
        assert isinstance(record, dict) and JSON_KEYS <= record.keys(), f"log line {number}: {line!r}"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"]), record
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, record
        records.append(record)
    return records


def sockets_open(server: ServerProcess) -> int:
    return server.health()[1]["sockets"]


def test_json_log_lines_mask_secrets_and_show_connects_and_disconnects(make_server: ServerFactory) -> None:
    server = make_server(JSON_LOG).start()
    alice_id, bob_id = server.add_users(2)
    post_id = post_of(server, alice_id)
    tokens = [server.token(alice_id), server.token(bob_id)]

    with server.client() as alice, server.client() as bob:
        alice.connect(alice_id, tokens[0])
        bob.connect(bob_id, tokens[1])
        alice.message(bob_id, "hello through the log", "log-1")
        sent = alice.expect("message_sent", clientMsgId="log-1")
        bob.expect("message", messageId=sent["messageId"])
        reply = notify(server, "like", {"X-Notify-Secret": NOTIFY_SECRET}, postId=post_id, userId=bob_id)
        assert reply.status == 200, reply.raw
        alice.expect("notification", postId=post_id)
    wait_until(lambda: sockets_open(server) == 0, "both sockets released")
    assert server.stop() == 0

    password = server.env.get("REALTIME_DATABASE_PASSWORD")
    records = json_records(server, [SECRET, NOTIFY_SECRET, *tokens, *([password] if password else [])])
    startup = [r for r in records if r["message"] == "effective configuration"]
    assert len(startup) == 1, "no start-up line with the effective configuration"
    assert startup[0]["level"] == "INFO"
    config = startup[0]["config"]
    assert (config["server"]["ws_port"], config["server"]["http_port"]) == (server.ws_port, server.http_port)
    assert config["auth"]["secret"] == config["notify"]["secret"] == "***"
    assert config["database"]["password"] == ("***" if password else "")
    assert config["log"] == {"level": "debug", "format": "json"}
    assert not [r for r in records if r["logger"].startswith("pykka") and r["level"] == "DEBUG"], "actor registrations"

    debug = [r["message"] for r in records if r["level"] == "DEBUG"]
    for user_id in (alice_id, bob_id):
        assert any(re.search(rf"\buser {user_id} connected\b", m) for m in debug), (user_id, debug)
        assert any(re.search(rf"\buser {user_id} disconnected\b", m) for m in debug), (user_id, debug)
    assert not [r for r in records if r["level"] in {"WARNING", "ERROR", "CRITICAL"}]


def test_json_log_shows_errors_with_context_and_stays_json(make_server: ServerFactory) -> None:
    server = make_server(JSON_LOG).start()
    alice_id, bob_id = server.add_users(2)
    install_poison_trigger(server)

    with server.connect(alice_id) as alice:
        alice.send({"type": "message_read", "messageId": 999_999_999})
        assert alice.expect_error("not_found")["ref"]["type"] == "message_read"
        alice.message(bob_id, POISON, "log-poison")
        refusal = alice.expect("error")
        assert refusal["code"] in {"internal", "unavailable"}, refusal
        assert refusal["ref"] == {"type": "message", "clientMsgId": "log-poison"}
        alice.assert_alive()
    wait_until(lambda: sockets_open(server) == 0, "the socket released")
    assert server.stop() == 0

    records = json_records(server, [SECRET, NOTIFY_SECRET])
    # the refused row: a warning or an error that says what failed (the writer, or the user) and why
    problems = [r for r in records if r["level"] in {"WARNING", "ERROR", "CRITICAL"}]
    about_poison = [r for r in problems if POISON in r["message"] + str(r.get("exc_info", ""))]
    assert about_poison, f"the database's refusal is not logged as a problem: {problems}"
    assert any("messages" in r["message"] or str(alice_id) in r["message"] for r in about_poison), (
        f"the logged error names neither the writer nor the user: {about_poison}"
    )


PLAIN_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: \S.*$")


def test_plain_log_lines_are_time_level_logger_message(make_server: ServerFactory) -> None:
    server = make_server().start()
    alice_id, bob_id = server.add_users(2)
    with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
        alice.message(bob_id, "plain", "plain-1")
        sent = alice.expect("message_sent", clientMsgId="plain-1")
        bob.expect("message", messageId=sent["messageId"])
    assert server.stop() == 0

    lines = server.log_path.read_text(encoding="utf-8").splitlines()
    assert lines
    for line in lines:
        assert PLAIN_LINE.match(line), f"not TIME LEVEL logger: message: {line!r}"
    assert any(" INFO web: effective configuration [server] " in line for line in lines)
    assert SECRET not in "\n".join(lines)


# ---------------------------------------------------------------- notify while restarting


@pytest.mark.slow
def test_notify_while_restarting_is_refused_quickly_and_the_retry_succeeds(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_SERVER_DRAIN_TIMEOUT": "10"}).start()
    owner_id, first_liker_id, liker_id, alice_id, bob_id = server.add_users(5)
    post_id = post_of(server, owner_id)
    assert timed_notify(server, postId=post_id, userId=first_liker_id).status == 200
    with server.connect(alice_id) as alice:
        with write_lock(server):
            # a message the drain has to store: it waits on the lock, and so does the shutdown
            alice.message(bob_id, "accepted before the shutdown", "drain-1")
            wait_until(lambda: Scrape(server).value("realtime_db_in_use") >= 1, "the message waiting on the lock")
            server.process.send_signal(signal.SIGTERM)
            wait_until(lambda: (server.health() or (0,))[0] != 200, "/healthz no longer 200 after SIGTERM")

            assert server.process.poll() is None, "the service did not wait for the message it accepted"
            during = timed_notify(server, postId=post_id, userId=liker_id)
            assert during.status in (None, 503), during
            assert during.seconds < QUICK, during
            stopping = server.health()
            assert stopping is None or stopping[0] == 503, stopping

            alice.assert_no_frame("message_sent", within=0.2)  # not stored yet: the lock is still held
        assert alice.expect("message_sent", clientMsgId="drain-1")
        assert alice.expect_close() == 1001
    assert server.process.wait(TIMEOUT) == 0

    down = timed_notify(server, postId=post_id, userId=liker_id)
    assert down.status is None and down.seconds < QUICK, down

    server.start()
    retry = timed_notify(server, postId=post_id, userId=liker_id)
    assert retry.status == 200 and json.loads(retry.body) == {"success": True, "recipients": 1, "online": 0}, retry
    with server.connect(owner_id) as owner:
        # the first like and the retry; a like the 503 might have stored is the retry's, which stores it once
        assert owner.connected["unreadNotifications"] == 2


@pytest.mark.slow
def test_notify_in_flight_at_sigterm_is_answered_not_cut_off(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_SERVER_DRAIN_TIMEOUT": "10"}).start()
    owner_id, liker_id = server.add_users(2)
    post_id = post_of(server, owner_id)
    outcome: list[Outcome | BaseException] = []

    def call() -> None:
        try:
            outcome.append(timed_notify(server, postId=post_id, userId=liker_id))
        except BaseException as error:  # reported below
            outcome.append(error)

    with write_lock(server):
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        wait_until(lambda: Scrape(server).value("realtime_db_in_use") >= 1, "the notification waiting on the lock")
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: (server.health() or (0,))[0] != 200, "/healthz no longer 200 after SIGTERM")
    caller.join(TIMEOUT)
    assert not caller.is_alive(), "the notify call in flight at SIGTERM hangs"
    assert server.process.wait(TIMEOUT) == 0
    (answer,) = outcome
    assert isinstance(answer, Outcome) and answer.status in (200, 503), answer
    if answer.status == 200:  # it was stored: the owner finds it
        server.start()
        with server.connect(owner_id) as owner:
            assert owner.connected["unreadNotifications"] == 1


# ---------------------------------------------------------------- shutdown and crash under traffic


@pytest.mark.slow
def test_sigterm_under_traffic_keeps_every_promise_closes_1001_and_exits_0(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_SERVER_DRAIN_TIMEOUT": str(DRAIN_TIMEOUT), **SCRIPTED_CLIENT_LIMITS}).start()
    senders, recipients = start_traffic(server, senders=4, online_recipients=4)
    for sender in senders:
        sender.wait_for(lambda t: len(t.acked) >= 30, "30 messages acknowledged")

    started = time.monotonic()
    assert server.stop(timeout=DRAIN_TIMEOUT) == 0
    assert time.monotonic() - started < DRAIN_TIMEOUT
    assert "Traceback" not in server.log_path.read_text(), server.log_tail()  # stopping is no failure

    for thread in senders + recipients:
        assert thread.wait_closed() == 1001, f"user {thread.user_id} closed with {thread.close_code}"
    for sender in senders:
        assert set(sender.refused.values()) <= {"unavailable"}, sender.refused  # refused while draining, if at all
        assert not sender.other_errors, sender.other_errors
    assert_promises_kept(stored_messages(server, [s.user_id for s in senders]), senders)


@pytest.mark.slow
def test_kill_9_under_traffic_loses_nothing_acknowledged_and_resends_store_nothing_twice(
    make_server: ServerFactory,
) -> None:
    server = make_server(SCRIPTED_CLIENT_LIMITS).start()
    senders, online = start_traffic(server, senders=4, online_recipients=2)
    for sender in senders:
        sender.wait_for(lambda t: len(t.acked) >= 30, "30 messages acknowledged")
    server.kill()
    for thread in senders + online:
        assert thread.wait_closed() == 1006  # no close frame: the process died
    for sender in senders:
        assert not sender.refused and not sender.other_errors, (sender.refused, sender.other_errors)

    before_restart = stored_messages(server, [s.user_id for s in senders])
    assert_promises_kept(before_restart, senders)
    stored_ids = {row.id for row in before_restart}
    for recipient in online:  # what was pushed had been stored
        assert {frame["messageId"] for frame in recipient.messages} <= stored_ids

    server.start()
    # each client resends everything it sent, acknowledged or not, with the same clientMsgIds
    for sender in senders:
        with server.connect(sender.user_id) as again:
            for client_msg_id, content in sender.sent:
                again.message(sender.to, content, client_msg_id)
            for client_msg_id, _ in sender.sent:
                answer = again.expect("message_sent", clientMsgId=client_msg_id)
                if client_msg_id in sender.acked:
                    assert answer["messageId"] == sender.acked[client_msg_id], (client_msg_id, answer)
                sender.acked[client_msg_id] = answer["messageId"]

    rows = stored_messages(server, [s.user_id for s in senders])
    assert_promises_kept(rows, senders)
    for sender in senders:
        mine = [row for row in rows if row.sender_id == sender.user_id]
        assert [row.client_msg_id for row in mine] == [key for key, _ in sender.sent], "lost, doubled or reordered"

    # recipients get on connect what they have not had, once, oldest first
    for sender in senders:
        conversation = [row for row in rows if row.sender_id == sender.user_id]
        was_online = next((r for r in online if r.user_id == sender.to), None)
        undelivered = [row for row in conversation if row.status == "sent"]
        if was_online is None:
            assert len(undelivered) == len(conversation)
        with server.connect(sender.to) as recipient:
            assert recipient.connected["unreadMessages"] == len(conversation)
            backlog = [recipient.expect("message") for _ in undelivered]
            assert [(f["messageId"], f["clientMsgId"], f["content"]) for f in backlog] == [
                (row.id, row.client_msg_id, row.content) for row in undelivered
            ]
            pushed_before = {frame["messageId"] for frame in (was_online.messages if was_online else [])}
            assert pushed_before | {f["messageId"] for f in backlog} == {row.id for row in conversation}
