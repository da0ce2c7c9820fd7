"""Storage against real databases (SQLite file, throwaway MariaDB): schema, idempotency, queries."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Iterator

import gevent
import pytest

from settings import load_settings
from storage import MessageDraft, NotificationDraft, Storage, open_storage, schema, store
from storage.engine import Session
from storage.schema import LATEST_VERSION
from tests.helpers.server import SECRET


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


LONG_CONVERSATION = 3000  # messages between users 1 and 2, far more than a page


def _insert_conversation(storage: Storage, rows: list[tuple[int, int, str, str]]) -> None:
    """Insert (sender, recipient, content, status) rows directly, in one transaction, ids in list order."""
    sql = (
        "INSERT INTO realtime_messages (sender_id, recipient_id, content, client_msg_id, status, created_at)"
        " VALUES (%s, %s, %s, NULL, %s, %s)"
    )
    values = [(sender, recipient, content, status, n) for n, (sender, recipient, content, status) in enumerate(rows)]
    storage.engine.transaction(lambda session: session.execute_many(sql, values), write=True)


def _long_conversation(storage: Storage) -> list[tuple[int, int, str, str]]:
    """Users 1 and 2 talk at length in uneven turns; 1 also talks to itself and to 3, so pages must skip those."""
    storage.add_users([(1, "a"), (2, "b"), (3, "c")])
    senders = [(1, 2), (1, 2), (2, 1), (1, 3), (1, 1), (2, 1), (2, 1), (3, 1)]
    statuses = ["read", "delivered", "sent"]
    rows = [(*senders[n % len(senders)], f"m{n}", statuses[n // 1000]) for n in range(LONG_CONVERSATION)]
    _insert_conversation(storage, rows)
    if storage.dialect == "mysql":
        storage.engine.transaction(lambda session: session.query("ANALYZE TABLE realtime_messages"))
    return rows


def _plan(storage: Storage, sql: str, params: tuple) -> list[tuple]:
    explain = "EXPLAIN QUERY PLAN " if storage.dialect == "sqlite" else "EXPLAIN "
    return [tuple(row) for row in storage.engine.transaction(lambda session: session.query(explain + sql, params))]


def _mysql_index_reads(storage: Storage, sql: str, params: tuple) -> int:
    """Index entries MariaDB's handler read to answer one statement (Handler_read_* of the session)."""

    def work(session) -> int:
        counters = "SHOW SESSION STATUS LIKE 'Handler_read_%%'"
        before = {name: int(value) for name, value in session.query(counters)}
        session.query(sql, params)
        after = {name: int(value) for name, value in session.query(counters)}
        reads = ("Handler_read_key", "Handler_read_next", "Handler_read_prev")
        return sum(after[name] - before[name] for name in reads)

    return storage.engine.transaction(work)


@pytest.mark.parametrize("pair", [(1, 2), (2, 1), (1, 1)], ids=["one-way", "other-way", "self"])
def test_a_conversation_page_is_a_range_scan_per_direction_that_never_sorts_the_conversation(
    storage: Storage, pair: tuple[int, int]
) -> None:
    """Each direction reads idx_messages_conversation backwards from `before` and stops after a page; only
    those page-sized lists are sorted, never the rows of the whole conversation."""
    _long_conversation(storage)
    directions = 1 if pair[0] == pair[1] else 2
    for before in (None, LONG_CONVERSATION // 2):
        plan = _plan(storage, *store.conversation_page_query(storage.dialect, *pair, before, 50))
        if storage.dialect == "sqlite":
            # (id, parent, _, detail): the table is read only in a CO-ROUTINE per direction, by a SEARCH on
            # the conversation index, and nothing inside that co-routine is sorted
            details = {node: detail for node, _, _, detail in plan}
            reads = [(parent, detail) for _, parent, _, detail in plan if "realtime_messages" in detail]
            assert len(reads) == directions, plan
            for parent, detail in reads:
                assert detail == (
                    "SEARCH realtime_messages USING INDEX idx_messages_conversation"
                    " (sender_id=? AND recipient_id=? AND id<?)"
                ), plan
                assert details[parent].startswith("CO-ROUTINE"), plan
                assert not [row for row in plan if row[1] == parent and "TEMP B-TREE" in row[3]], plan
            assert not [row for row in plan if "MULTI-INDEX OR" in row[3]], plan
        else:
            # id, select_type, table, type, possible_keys, key, key_len, ref, rows, Extra
            reads = [row for row in plan if row[2] == "realtime_messages"]
            assert len(reads) == directions, plan
            for row in reads:
                assert (row[3], row[5], row[6]) == ("range", "idx_messages_conversation", "24"), plan  # id too
                assert "filesort" not in (row[9] or "") and "temporary" not in (row[9] or ""), plan
            # and the work done: index entries read per direction stay within a page, however deep the page
            rows_read = _mysql_index_reads(storage, *store.conversation_page_query(storage.dialect, *pair, before, 50))
            assert rows_read <= directions * 51, rows_read


@pytest.mark.parametrize("pair", [(1, 2), (2, 1), (1, 1), (1, 3)], ids=["one-way", "other-way", "self", "short"])
def test_paging_back_through_a_long_conversation_returns_each_message_once_in_order(
    storage: Storage, pair: tuple[int, int]
) -> None:
    rows = _long_conversation(storage)
    ids = storage.engine.transaction(lambda session: session.query("SELECT id FROM realtime_messages ORDER BY id"))
    stored = [(int(row_id), *row) for (row_id,), row in zip(ids, rows)]
    expected = [entry for entry in stored if {entry[1], entry[2]} == set(pair)]
    pages, before = [], None
    while page := storage.history(*pair, before, 100):
        assert len(page) <= 100 and [m.id for m in page] == sorted(m.id for m in page)
        pages.insert(0, page)
        before = page[0].id
    received = [message for page in pages for message in page]
    assert [(m.id, m.sender_id, m.recipient_id, m.content, m.status) for m in received] == expected
    assert all(len(page) == 100 for page in pages[1:])  # only the oldest page is short


# statement, parameters, SQLite's plan, MariaDB's (type, key, key_len): each a range of its index, to the id too
SINGLE_RANGE_STATEMENTS = {
    "read receipt": (
        store.mark_read_statement,
        (1, 1, 2, LONG_CONVERSATION // 2, 1),
        "SEARCH realtime_messages USING INDEX idx_messages_recipient_status (recipient_id=? AND status=? AND id<?)",
        ("range", "idx_messages_recipient_status", "54"),
    ),
    "undelivered page": (
        store.undelivered_query,
        (2, LONG_CONVERSATION // 2, 500),
        "SEARCH realtime_messages USING INDEX idx_messages_recipient_status (recipient_id=? AND status=? AND id>?)",
        ("range", "idx_messages_recipient_status", "54"),
    ),
    "notifications page": (
        store.notifications_page_query,
        (1, LONG_CONVERSATION // 2, 20),
        "SEARCH realtime_notifications USING INDEX idx_notifications_user (user_id=? AND id<?)",
        ("range", "idx_notifications_user", "16"),
    ),
}


@pytest.mark.parametrize("name", SINGLE_RANGE_STATEMENTS)
def test_receipts_backlogs_and_notification_pages_read_one_index_range(storage: Storage, name: str) -> None:
    """Their work is the page (or what is unread), not everything before it: a read receipt by (sender_id,
    recipient_id, id) took 40 ms in a conversation of 8,700 read messages; MariaDB by `ref` read row by row
    every notification newer than the page."""
    _long_conversation(storage)
    storage.store_notifications(
        [NotificationDraft(n % 2 + 1, "like", 3 + n, 1, None, "liked", n) for n in range(LONG_CONVERSATION)]
    )
    statement, params, sqlite_plan, mysql_plan = SINGLE_RANGE_STATEMENTS[name]
    plan = _plan(storage, statement(storage.dialect), params)
    if storage.dialect == "sqlite":
        assert [detail for _, _, _, detail in plan] == [sqlite_plan], plan
    else:
        [(_, _, _, kind, _, key, key_len, *_)] = plan
        assert (kind, key, key_len) == mysql_plan, plan


def test_unread_counts_read_only_unread_entries_of_a_covering_index(storage: Storage) -> None:
    _long_conversation(storage)
    plan = _plan(storage, store.unread_counts_query(2), (1, 2))
    if storage.dialect == "sqlite":
        counts = [detail for _, _, _, detail in plan if "realtime_messages" in detail]
        assert counts == [
            "SEARCH realtime_messages USING COVERING INDEX idx_messages_recipient_status (recipient_id=? AND status=?)"
        ] * len(store.UNREAD_STATUSES), plan
    else:
        counts = [row for row in plan if row[2] == "realtime_messages"]
        assert len(counts) == len(store.UNREAD_STATUSES), plan
        for row in counts:  # ref on (recipient_id, status): 8 + 38 bytes of key
            assert (row[3], row[5], row[6]) == ("ref", "idx_messages_recipient_status", "46"), plan
            assert "Using index" in row[9], plan


def test_a_read_receipt_marks_exactly_the_senders_earlier_unread_messages(storage: Storage) -> None:
    storage.add_users([(1, "a"), (2, "b"), (3, "c")])
    sent = storage.store_messages(
        [_draft(sender, recipient, "m") for sender, recipient in [(1, 2)] * 3 + [(3, 2), (2, 1), (1, 2)]]
    )
    first, second, third, from_other, reply, later = [result.message for result in sent]
    storage.mark_delivered([second], 1000)

    mark = storage.mark_read(2, third.id, 2000)

    assert (mark.sender_id, mark.reader_id, mark.read_at) == (1, 2, 2000)
    statuses = {m.id: m.status for m in storage.history(1, 2, None, 50) + storage.history(3, 2, None, 50)}
    assert [statuses[m.id] for m in (first, second, third, later)] == ["read", "read", "read", "sent"]
    assert (statuses[from_other.id], statuses[reply.id]) == ("sent", "sent")
    [summary] = storage.connect_summaries([2])
    assert summary.unread_messages == 2  # `later` and the other sender's


def test_a_deleted_message_leaves_every_unread_count_backlog_and_receipt(storage: Storage) -> None:
    storage.add_users([(1, "a"), (2, "b")])
    gone, read_later, delivered_then_gone = [
        result.message for result in storage.store_messages([_draft(1, 2, f"m{n}", f"k{n}") for n in range(3)])
    ]
    storage.mark_delivered([delivered_then_gone], 1000)

    deletion = storage.delete_message(1, gone.id, 2000)
    assert (deletion.sender_id, deletion.recipient_id, deletion.deleted_at) == (1, 2, 2000)
    assert storage.delete_message(1, gone.id, 3000).deleted_at == 2000  # again: nothing changes
    storage.delete_message(1, delivered_then_gone.id, 2500)

    assert storage.mark_delivered([gone], 4000) == {}
    assert [m.id for m in storage.undelivered_messages(2)] == [read_later.id]
    [summary] = storage.connect_summaries([2])
    assert summary.unread_messages == 1 and [m.id for m in summary.backlog] == [read_later.id]
    assert storage.mark_read(2, delivered_then_gone.id, 5000) is None  # marks read_later, names no deleted one
    history = {m.id: (m.content, m.status, m.deleted_at) for m in storage.history(2, 1, None, 50)}
    assert history == {
        gone.id: ("", "sent", 2000),
        read_later.id: ("m1", "read", None),
        delivered_then_gone.id: ("", "delivered", 2500),
    }
    [again] = storage.store_messages([_draft(1, 2, "m0", "k0")])  # a resend finds the erased row
    assert (again.created, again.message.content, again.message.deleted_at) == (False, "", 2000)
    with pytest.raises(store.Forbidden):
        storage.delete_message(2, read_later.id, 6000)
    with pytest.raises(store.NotFound):
        storage.delete_message(1, 2**63 - 1, 6000)


@pytest.mark.parametrize(
    "statement, params, mysql_access",
    [
        (store.DELETION_TARGET, (LONG_CONVERSATION // 2,), "const"),
        (store.ERASE_MESSAGE, (1, LONG_CONVERSATION // 2), "range"),  # MariaDB's EXPLAIN UPDATE: a one-key range
    ],
    ids=["read", "erase"],
)
def test_a_deletion_reads_and_writes_one_row_by_primary_key(
    storage: Storage, statement: str, params: tuple, mysql_access: str
) -> None:
    _long_conversation(storage)
    plan = _plan(storage, statement, params)
    if storage.dialect == "sqlite":
        assert [detail for _, _, _, detail in plan] == ["SEARCH realtime_messages USING INTEGER PRIMARY KEY (rowid=?)"]
    else:
        [row] = plan
        assert (row[3], row[5], int(row[8])) == (mysql_access, "PRIMARY", 1), plan


def _summaries(storage: Storage) -> list[tuple[int, int, int, int]]:
    """Every (user_id, peer_id, last_message_id, unread) of the inbox summary table."""
    rows = storage.engine.transaction(
        lambda session: session.query(
            "SELECT user_id, peer_id, last_message_id, unread FROM realtime_conversations ORDER BY user_id, peer_id"
        )
    )
    return [tuple(int(value) for value in row) for row in rows]


def _inbox(storage: Storage, user_id: int) -> list[tuple[int, int, int]]:
    return [(c.peer_id, c.last_message.id, c.unread) for c in storage.conversations(user_id, None, 100)]


def test_inbox_summaries_follow_batches_reads_and_deletions(storage: Storage) -> None:
    storage.add_users([(1, "a"), (2, "b"), (3, "c")])
    one, two, self_one, three, reply, self_two = [
        r.message
        for r in storage.store_messages(
            [
                _draft(1, 2, "one"),
                _draft(1, 2, "two"),
                _draft(1, 1, "me"),
                _draft(1, 2, "three"),
                _draft(2, 1, "reply"),
                _draft(1, 1, "me again"),
            ]
        )
    ]
    [to_three] = [r.message for r in storage.store_messages([_draft(3, 2, "hi b")])]
    assert _summaries(storage) == [
        (1, 1, self_two.id, 2),  # a talk to oneself: one summary, unread like the connect count
        (1, 2, reply.id, 1),
        (2, 1, reply.id, 3),
        (2, 3, to_three.id, 1),
        (3, 2, to_three.id, 0),
    ]
    assert _inbox(storage, 2) == [(3, to_three.id, 1), (1, reply.id, 3)]
    assert _inbox(storage, 1) == [(1, self_two.id, 2), (2, reply.id, 1)]

    storage.mark_read(2, two.id, 1000)  # one and two
    storage.mark_read(2, two.id, 1001)  # again: nothing more to lower
    assert _inbox(storage, 2) == [(3, to_three.id, 1), (1, reply.id, 1)]
    storage.delete_message(1, three.id, 2000)  # unread: leaves the count
    storage.delete_message(1, one.id, 2000)  # read already: the count stays
    storage.delete_message(1, self_one.id, 2000)
    storage.delete_message(1, self_one.id, 2001)  # again: counted once
    assert _inbox(storage, 2) == [(3, to_three.id, 1), (1, reply.id, 0)]
    assert _inbox(storage, 1) == [(1, self_two.id, 1), (2, reply.id, 1)]

    storage.delete_message(2, reply.id, 3000)  # the last message deleted: still the conversation's last
    [entry] = [c for c in storage.conversations(1, None, 10) if c.peer_id == 2]
    assert (entry.last_message.content, entry.last_message.deleted_at, entry.last_message.status) == ("", 3000, "sent")
    assert entry.unread == 0
    assert storage.conversations(3, None, 10)[0].last_message.content == "hi b"
    assert [c.peer_id for c in storage.conversations(2, to_three.id, 10)] == [1]  # paged by the last message
    assert storage.conversations(99, None, 10) == []


def test_the_migration_fills_the_same_summaries_the_service_keeps(storage: Storage) -> None:
    """An existing deployment upgrading: the summaries filled from its messages are those the service would
    have kept while storing, reading and deleting them."""
    storage.add_users([(1, "a"), (2, "b"), (3, "c")])
    pairs = [(1, 2), (2, 1), (1, 1), (3, 1), (1, 2), (2, 3), (3, 1), (2, 1), (1, 1)]
    messages = [r.message for r in storage.store_messages([_draft(s, r, f"m{n}") for n, (s, r) in enumerate(pairs)])]
    storage.mark_read(2, messages[0].id, 1000)
    storage.mark_read(1, messages[6].id, 1000)
    storage.mark_delivered([messages[7]], 1000)
    for deleted in (messages[4], messages[8], messages[5]):
        storage.delete_message(deleted.sender_id, deleted.id, 2000)
    kept = _summaries(storage)

    def refill(session) -> None:
        session.execute("DELETE FROM realtime_conversations")
        session.execute(schema.CONVERSATIONS_BACKFILL)

    storage.engine.transaction(refill, write=True)
    assert _summaries(storage) == kept


def test_a_batch_whose_ids_are_not_one_range_adds_only_its_own_messages(storage: Storage) -> None:
    """MariaDB chunks a large batch, and another write lane may take ids between its chunks: the summaries must
    then count the batch's own messages only."""
    storage.add_users([(1, "a"), (2, "b"), (3, "c")])
    _insert_conversation(storage, [(1, 2, "m", "sent"), (3, 1, "m", "sent"), (2, 1, "m", "sent"), (3, 1, "m", "sent")])
    ids = [int(row[0]) for row in storage.engine.transaction(lambda s: s.query("SELECT id FROM realtime_messages"))]
    ours, other_lane = sorted(ids)[::2], sorted(ids)[1::2]

    storage.engine.transaction(lambda session: storage._update_summaries(session, ours), write=True)
    assert _summaries(storage) == [(1, 2, ours[1], 1), (2, 1, ours[1], 1)]
    storage.engine.transaction(lambda session: storage._update_summaries(session, other_lane), write=True)
    assert _summaries(storage) == [
        (1, 2, ours[1], 1),
        (1, 3, other_lane[1], 2),
        (2, 1, ours[1], 1),
        (3, 1, other_lane[1], 0),
    ]


def test_an_inbox_page_reads_one_index_range_and_joins_each_last_message_by_primary_key(storage: Storage) -> None:
    """However many conversations the user has and however long they are: a page's work is the page."""
    storage.add_users([(1, "a")])
    rows = [(1, peer, f"m{n}", "sent") for n, peer in enumerate(list(range(2, 1002)) * 3)]
    _insert_conversation(storage, rows)
    storage.engine.transaction(lambda session: session.execute(schema.CONVERSATIONS_BACKFILL), write=True)
    if storage.dialect == "mysql":
        storage.engine.transaction(lambda session: session.query("ANALYZE TABLE realtime_conversations"))
    params = (1, 2500, 20)
    plan = _plan(storage, store.conversations_page_query(storage.dialect), params)
    if storage.dialect == "sqlite":
        assert [detail for _, _, _, detail in plan] == [
            "SEARCH realtime_conversations USING INDEX idx_conversations_recent (user_id=? AND last_message_id<?)",
            "SEARCH realtime_messages USING INTEGER PRIMARY KEY (rowid=?)",
        ], plan
    else:
        summary, message = plan
        assert (summary[2], summary[3], summary[5], summary[6]) == (
            "realtime_conversations",
            "range",
            "idx_conversations_recent",
            "16",
        ), plan
        assert "filesort" not in (summary[9] or "") and "temporary" not in (summary[9] or ""), plan
        assert (message[2], message[3], message[5]) == ("realtime_messages", "eq_ref", "PRIMARY"), plan
        assert _mysql_index_reads(storage, store.conversations_page_query(storage.dialect), params) <= 2 * 21
    page = storage.conversations(*params)
    assert [c.last_message.id for c in page] == list(range(2499, 2479, -1))


@pytest.mark.parametrize("consecutive", [True, False], ids=["consecutive ids", "ids read back"])
def test_a_fan_out_batch_is_stored_in_one_statement_per_thousand_rows_with_each_rows_id(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, consecutive: bool
) -> None:
    """A post's notifications to 2,345 followers: three multi-row INSERTs (1,000 rows at most each), not one per
    row, whether the database gives a statement consecutive ids (SQLite; MariaDB's default auto-increment lock
    mode) or returns them (MariaDB otherwise); each notification returned carries the id of its user's row."""
    if not consecutive and not storage.engine.supports_returning:
        pytest.skip("SQLite always gives a statement consecutive ids")
    users = list(range(10, 10 + 2345))
    monkeypatch.setattr(storage.engine, "consecutive_ids", consecutive)
    statements: list[str] = []
    monkeypatch.setattr(Session, "query", _counting(Session.query, statements))
    monkeypatch.setattr(Session, "insert", _counting(Session.insert, statements))

    stored = storage.store_notifications(
        [NotificationDraft(user_id, "post", 7, 70, None, "seven posted", 1_000 + user_id) for user_id in users]
    )

    inserts = [sql for sql in statements if sql.startswith("INSERT INTO realtime_notifications")]
    assert len(inserts) == 3
    assert [n.user_id for n in stored] == users
    assert [n.id for n in stored] == sorted({n.id for n in stored})  # distinct, and growing in the batch's order
    monkeypatch.undo()
    rows = storage.engine.transaction(
        lambda session: session.query("SELECT id, user_id, created_at, text FROM realtime_notifications ORDER BY id")
    )
    assert [(int(i), int(u), int(c), t) for i, u, c, t in rows] == [
        (n.id, n.user_id, n.created_at, "seven posted") for n in stored
    ]


def _counting(method, statements: list[str]):
    """`method` of Session, recording each SQL statement it runs in `statements`."""

    def run(session: Session, sql: str, params=()):
        statements.append(sql)
        return method(session, sql, params)

    return run
