"""The database stops and returns while the service runs (MariaDB: a server of the test's own)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers.mariadb import MariaDB, start_mariadb
from tests.helpers.operations import Scrape, Traffic, assert_promises_kept, start_traffic, stored_messages
from tests.helpers.server import BACKENDS, SCRIPTED_CLIENT_LIMITS, ServerProcess, mysql_database

pytestmark = [pytest.mark.slow, pytest.mark.skipif("mysql" not in BACKENDS, reason="needs the MariaDB backend")]
RECOVERY_TIMEOUT = 30.0
OUTAGE_SECONDS = 10.0


def _wait_for_health(server: ServerProcess, expected: int) -> dict:
    return server.wait_health(lambda status, _: status == expected, f"/healthz {expected}", RECOVERY_TIMEOUT)


def _server_on(database: MariaDB, workdir: Path, extra_env: dict[str, str] | None = None) -> ServerProcess:
    return ServerProcess(workdir, mysql_database(database, "outage"), extra_env).start()


def test_health_says_503_while_the_database_is_down_and_recovers_without_restart(tmp_path: Path) -> None:
    database = start_mariadb(tmp_path / "mariadb")
    try:
        server = _server_on(database, tmp_path / "server")
        try:
            alice_id, bob_id = server.add_users(2)
            server.close_storage()
            with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
                database.stop()
                body = _wait_for_health(server, 503)
                assert body["status"] != "ok" and body["database"] == "down"
                assert Scrape(server).value("realtime_database_up") == 0  # what the alert RealtimeDatabaseDown reads

                alice.message(bob_id, "while the database is down", "down-1")
                error = alice.expect_error("unavailable")
                assert error["ref"] == {"type": "message", "clientMsgId": "down-1"}
                alice.assert_no_frame("message_sent")
                bob.assert_no_frame("message")
                alice.assert_alive()

                database.start()
                assert _wait_for_health(server, 200)["database"] == "ok"
                assert Scrape(server).value("realtime_database_up") == 1
                alice.message(bob_id, "after it returned", "down-1")
                sent = alice.expect("message_sent", clientMsgId="down-1")
                assert bob.expect("message", messageId=sent["messageId"])["content"] == "after it returned"
        finally:
            server.stop()
    finally:
        database.stop()


def _unavailable(traffic: Traffic) -> int:
    return sum(code == "unavailable" for code in traffic.refused.values())


def test_ten_second_outage_under_traffic_refuses_sends_keeps_sockets_and_recovers_by_itself(tmp_path: Path) -> None:
    database = start_mariadb(tmp_path / "mariadb")
    try:
        server = _server_on(database, tmp_path / "server", SCRIPTED_CLIENT_LIMITS)  # 50 messages/s per sender
        pid = server.process.pid
        senders: list[Traffic] = []
        recipients: list[Traffic] = []
        try:
            senders, recipients = start_traffic(server, senders=3, online_recipients=3, rate=50.0)
            server.close_storage()  # the test's own connections would only notice the outage later
            for sender in senders:
                sender.wait_for(lambda t: len(t.acked) >= 10, "10 messages acknowledged before the outage")

            database.stop()
            outage_started = time.monotonic()
            body = _wait_for_health(server, 503)
            assert body["status"] != "ok" and body["database"] == "down"
            acked_when_down = {}
            for sender in senders:
                # answers on one socket come in order: after the first refusal nothing sent earlier is pending
                sender.wait_for(lambda t: _unavailable(t) >= 1, "a send refused as unavailable")
                acked_when_down[sender.user_id] = sender.count_acked()
                sender.wait_for(lambda t: _unavailable(t) >= 5, "more sends refused as unavailable")

            # the rest of the outage: /healthz stays 503, every socket stays open, nothing is acknowledged
            while time.monotonic() - outage_started < OUTAGE_SECONDS:
                status, body = server.health()
                assert status == 503 and body["database"] == "down", (status, body)
                time.sleep(0.2)  # polling /healthz through the outage
            for thread in senders + recipients:
                assert thread.close_code is None, f"user {thread.user_id}'s socket closed with {thread.close_code}"
            for sender in senders:
                assert sender.count_acked() == acked_when_down[sender.user_id], (
                    "acknowledged while the database was down"
                )
                assert set(sender.refused.values()) == {"unavailable"}, set(sender.refused.values())
                assert not sender.other_errors, sender.other_errors

            database.start()
            assert _wait_for_health(server, 200)["database"] == "ok"
            for sender, recipient in zip(senders, recipients):
                recovered_at = sender.count_acked()
                sender.wait_for(lambda t, n=recovered_at: len(t.acked) >= n + 5, "acknowledged again", RECOVERY_TIMEOUT)
                with sender._changed:  # noqa: SLF001
                    newest = max(sender.acked.values())
                recipient.wait_for(
                    lambda t, m=newest: any(frame["messageId"] == m for frame in t.messages), "delivered again"
                )
            for thread in senders + recipients:
                thread.stop()
                assert thread.close_code is None, f"user {thread.user_id}'s socket closed with {thread.close_code}"
            assert server.process.poll() is None and server.process.pid == pid, "the service was restarted"

            assert_promises_kept(stored_messages(server, [s.user_id for s in senders]), senders)
        finally:
            for thread in senders + recipients:
                thread.halt()
                thread.client.close()
            server.stop()
            server.close_storage()
    finally:
        database.stop()
