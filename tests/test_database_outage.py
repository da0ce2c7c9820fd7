"""The database stops and returns while the service runs (MariaDB: a server of the test's own)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import BACKENDS
from tests.mariadb import start_mariadb
from tests.server import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.skipif("mysql" not in BACKENDS, reason="needs the MariaDB backend")]
RECOVERY_TIMEOUT = 30.0


def _health(server: ServerProcess) -> tuple[int, dict]:
    status, body = server.get("/healthz")
    return status, json.loads(body)


def _wait_for_health(server: ServerProcess, expected: int) -> dict:
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        status, body = _health(server)
        if status == expected:
            return body
        assert time.monotonic() < deadline, f"/healthz still {status} {body}"
        time.sleep(0.1)  # polling an HTTP endpoint: there is no event to wait on


def test_health_says_503_while_the_database_is_down_and_recovers_without_restart(tmp_path: Path) -> None:
    database = start_mariadb(tmp_path / "mariadb")
    try:
        database.create_database("outage")
        server = ServerProcess(
            tmp_path / "server",
            {
                "REALTIME_DATABASE_BACKEND": "mysql",
                "REALTIME_DATABASE_HOST": database.host,
                "REALTIME_DATABASE_PORT": str(database.port),
                "REALTIME_DATABASE_USER": database.user,
                "REALTIME_DATABASE_PASSWORD": database.password,
                "REALTIME_DATABASE_NAME": "outage",
            },
        ).start()
        try:
            alice_id, bob_id = server.add_users(2)
            server.close_storage()
            with server.connect(alice_id) as alice, server.connect(bob_id) as bob:
                database.stop()
                body = _wait_for_health(server, 503)
                assert body["status"] != "ok" and body["database"] == "down"

                alice.message(bob_id, "while the database is down", "down-1")
                error = alice.expect_error("unavailable")
                assert error["ref"] == {"type": "message", "clientMsgId": "down-1"}
                alice.assert_no_frame("message_sent")
                bob.assert_no_frame("message")
                alice.assert_alive()

                database.start()
                assert _wait_for_health(server, 200)["database"] == "ok"
                alice.message(bob_id, "after it returned", "down-1")
                sent = alice.expect("message_sent", clientMsgId="down-1")
                assert bob.expect("message", messageId=sent["messageId"])["content"] == "after it returned"
        finally:
            server.stop()
    finally:
        database.stop()
