"""Storage against real databases (SQLite file, throwaway MariaDB): schema, idempotency, queries."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Iterator

import gevent
import pytest

from settings import load_settings
from storage import MessageDraft, Storage, open_storage
from storage.schema import LATEST_VERSION
from tests.server import SECRET


def _open(database_env: dict[str, str]) -> Storage:
    return open_storage(load_settings(environ={**database_env, "REALTIME_AUTH_SECRET": SECRET}).database)


@pytest.fixture
def database_env(backend: str, new_database) -> dict[str, str]:
    return new_database(backend)


@pytest.fixture
def storage(database_env: dict[str, str]) -> Iterator[Storage]:
    opened = _open(database_env)
    opened.prepare()
    yield opened
    opened.close()


def _draft(sender: int, recipient: int, content: str, client_msg_id: str | None = None) -> MessageDraft:
    return MessageDraft(sender, recipient, content, client_msg_id, int(time.time() * 1000))


def test_migrations_apply_once_and_a_second_start_changes_nothing(database_env: dict[str, str]) -> None:
    first = _open(database_env)
    assert first.prepare() == list(range(1, LATEST_VERSION + 1))
    first.close()
    second = _open(database_env)
    assert second.prepare() == []
    assert second.schema_version() == LATEST_VERSION
    second.close()


def test_a_new_sqlite_file_locked_by_another_process_switching_it_to_wal_is_waited_for(tmp_path: Path) -> None:
    """Two nodes starting together on one new SQLite file: while one holds the file's lock to switch it to WAL,
    SQLite refuses the other's switch at once ("database is locked"); the other must wait and start anyway."""
    path = tmp_path / "new.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the lock the other node holds while it switches the new file to WAL
    storage = _open({"REALTIME_DATABASE_BACKEND": "sqlite", "REALTIME_DATABASE_PATH": str(path)})
    preparing = gevent.spawn(storage.prepare)
    preparing.join(timeout=0.5)
    assert not preparing.ready(), f"did not wait for the other process's lock: {preparing.exception!r}"
    other.execute("COMMIT")
    preparing.join(timeout=15)
    assert preparing.successful(), preparing.exception
    assert preparing.value == list(range(1, LATEST_VERSION + 1))
    assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    other.close()
    storage.close()


def test_platform_tables_with_extra_columns_are_used_as_they_are(database_env: dict[str, str]) -> None:
    platform = _open(database_env)
    ddl = [
        "CREATE TABLE users (id BIGINT NOT NULL PRIMARY KEY, username VARCHAR(100) NOT NULL,"
        " email VARCHAR(200) NOT NULL DEFAULT '', is_admin SMALLINT NOT NULL DEFAULT 0)",
        "CREATE TABLE follows (id BIGINT NOT NULL PRIMARY KEY, follower_id BIGINT NOT NULL,"
        " followee_id BIGINT NOT NULL, created_at BIGINT NULL)",
        "CREATE TABLE posts (id BIGINT NOT NULL PRIMARY KEY, user_id BIGINT NOT NULL, title VARCHAR(50) NULL)",
    ]

    def create(session) -> None:
        for statement in ddl:
            session.execute(statement)

    platform.engine.transaction(create, write=True)
    platform.add_users([(1, "ann"), (2, "ben")])
    platform.prepare()
    [result] = platform.store_messages([_draft(1, 2, "hi")])
    assert result.created and result.message is not None
    [summary] = platform.connect_summaries([2])
    assert summary is not None and summary.unread_messages == 1
    columns = platform.engine.transaction(lambda s: s.query("SELECT id, username, email FROM users ORDER BY id"))
    assert [tuple(row) for row in columns] == [(1, "ann", ""), (2, "ben", "")]
    platform.close()


def test_client_msg_id_is_unique_per_sender_in_the_database(storage: Storage) -> None:
    storage.add_users([(1, "a"), (2, "b")])
    [first] = storage.store_messages([_draft(1, 2, "x", "key")])
    assert first.message is not None

    def insert_duplicate(session) -> None:
        session.execute(
            "INSERT INTO realtime_messages (sender_id, recipient_id, content, client_msg_id, status, created_at)"
            " VALUES (1, 2, 'again', 'key', 'sent', 0)"
        )

    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        storage.engine.transaction(insert_duplicate, write=True)


def test_a_batch_keeps_order_and_resolves_repeats_and_unknown_recipients(storage: Storage) -> None:
    storage.add_users([(1, "a"), (2, "b")])
    results = storage.store_messages(
        [
            _draft(1, 2, "one", "a"),
            _draft(1, 2, "two"),
            _draft(1, 2, "one again", "a"),
            _draft(1, 99, "nobody"),
            _draft(1, 2, "three", "A"),  # ids differ only in case: distinct
            _draft(1, 2, "four", "a "),  # trailing space: distinct
        ]
    )
    created = [r.message.id for r in results if r.created]
    assert created == sorted(created) and len(created) == 4
    assert results[2].message == results[0].message and not results[2].created
    assert results[3].message is None
    again = storage.store_messages([_draft(1, 2, "one", "a")])[0]
    assert not again.created and again.message.id == results[0].message.id
    assert [m.content for m in storage.history(1, 2, None, 50)] == ["one", "two", "three", "four"]


def test_mark_delivered_reports_only_messages_that_moved(storage: Storage) -> None:
    storage.add_users([(1, "a"), (2, "b")])
    messages = [r.message for r in storage.store_messages([_draft(1, 2, "x", "kx"), _draft(1, 2, "y")])]
    ids = [m.id for m in messages]
    moved = storage.mark_delivered(messages, 1234)
    assert sorted(moved) == ids and all(d.delivered_at == 1234 and d.sender_id == 1 for d in moved.values())
    assert [moved[i].client_msg_id for i in ids] == ["kx", None]
    assert storage.mark_delivered(messages, 5678) == {}
    assert storage.undelivered_messages(2) == []


def test_mark_delivered_in_the_same_millisecond_as_another_writer_reports_nothing(storage: Storage) -> None:
    """Two nodes, each with a socket of the recipient, mark one message at once: only the first announces it."""
    storage.add_users([(1, "a"), (2, "b")])
    [stored] = storage.store_messages([_draft(1, 2, "x")])
    assert list(storage.mark_delivered([stored.message], 1234)) == [stored.message.id]
    assert storage.mark_delivered([stored.message], 1234) == {}


def test_mark_delivered_of_a_mix_reports_only_those_still_sent(storage: Storage) -> None:
    storage.add_users([(1, "a"), (2, "b")])
    first, second, third = [r.message for r in storage.store_messages([_draft(1, 2, t) for t in "xyz"])]
    storage.mark_delivered([first], 1000)
    storage.mark_read(2, second.id, 2000)  # reads everything up to it: first and second

    moved = storage.mark_delivered([first, second, third], 3000)

    assert list(moved) == [third.id] and moved[third.id].delivered_at == 3000


def test_unicode_content_round_trips_byte_for_byte(storage: Storage) -> None:
    storage.add_users([(1, "a"), (2, "b")])
    text = "emoji 😀, accents é, CJK 漢字, NUL \x00, quotes ' \" ; DROP TABLE users; --"
    [stored] = storage.store_messages([_draft(1, 2, text, "ü-ключ")])
    [loaded] = storage.history(2, 1, None, 10)
    assert loaded.content == text and loaded.client_msg_id == "ü-ключ"
    assert stored.message.id == loaded.id


def test_connect_summaries_answer_several_users_in_one_call_in_the_order_asked(storage: Storage) -> None:
    storage.add_users([(1, "a"), (2, "b"), (3, "c")])
    storage.store_messages([_draft(1, 2, "one"), _draft(1, 2, "two"), _draft(2, 3, "three")])
    [delivered] = storage.store_messages([_draft(3, 1, "four")])
    storage.mark_delivered([delivered.message], int(time.time() * 1000))

    first_of_three, unknown, two, one, second_of_three = storage.connect_summaries([3, 99, 2, 1, 3])

    assert unknown is None
    assert (two.unread_messages, [m.content for m in two.backlog]) == (2, ["one", "two"])
    assert (one.unread_messages, one.backlog) == (1, [])  # delivered but unread: counted, not in the backlog
    assert first_of_three == second_of_three
    assert [m.content for m in first_of_three.backlog] == ["three"]
