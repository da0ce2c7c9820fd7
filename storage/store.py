"""Every query the service makes, written once for SQLite and MySQL/MariaDB.

`Storage` methods are synchronous and each runs as one transaction on the
engine. They return plain immutable records that can be handed between
actors as they are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from storage import schema
from storage.engine import Session, placeholders

MESSAGE_COLUMNS = (
    "id, sender_id, recipient_id, content, client_msg_id, created_at, status, delivered_at, read_at, deleted_at"
)
NOTIFICATION_COLUMNS = "id, user_id, type, actor_id, post_id, comment_id, created_at, text, is_read"
NEWEST = 2**63 - 1
BACKLOG_PAGE = 500
KNOWN_USER_SECONDS = 60.0
KNOWN_USERS_MAX = 100_000
BLOCKS_CACHED_MAX = 100_000  # users whose blocks are remembered; past that the cache starts afresh
NO_BLOCKS: frozenset[int] = frozenset()
MAX_ROWS_PER_INSERT = 1000  # keeps one statement well under max_allowed_packet
UNREAD_STATUSES = ("sent", "delivered")  # short of read: a range each on idx_messages_recipient_status
UNREAD = "(" + ", ".join(f"'{status}'" for status in UNREAD_STATUSES) + ")"
# a deleted message's status: neither unread nor undelivered, so no count, backlog or receipt takes it any more
DELETED = "deleted"
# a deletion reads and writes one row by primary key: parameters message_id, then deleted_at, message_id
DELETION_TARGET = "SELECT sender_id, recipient_id, deleted_at, status FROM realtime_messages WHERE id = %s"
ERASE_MESSAGE = f"UPDATE realtime_messages SET content = '', status = '{DELETED}', deleted_at = %s WHERE id = %s"
# one direction of a conversation page, as a member of a UNION ALL: SQLite takes an ORDER BY ... LIMIT member
# only as a subquery, which MariaDB would materialise (twice as slow there as a parenthesised member)
UNION_MEMBER = {"sqlite": "SELECT * FROM ({})", "mysql": "({})"}
# a batch's messages added to the inbox summaries of both sides, aggregated by the database from the rows just
# inserted (chosen by `{}`), in (user_id, peer_id) order, so two MariaDB write lanes lock shared rows in one order
SUMMARY_UPSERT = {
    "sqlite": "INSERT INTO realtime_conversations (user_id, peer_id, last_message_id, unread) {}"
    " ON CONFLICT (user_id, peer_id) DO UPDATE SET last_message_id = MAX(last_message_id, excluded.last_message_id),"
    " unread = unread + excluded.unread",
    "mysql": "INSERT INTO realtime_conversations (user_id, peer_id, last_message_id, unread) {}"
    " ON DUPLICATE KEY UPDATE last_message_id = GREATEST(last_message_id, VALUES(last_message_id)),"
    " unread = unread + VALUES(unread)",
}
LAST_SEEN_UPSERT = {
    "sqlite": "INSERT INTO realtime_presence (user_id, last_seen) VALUES (%s, %s)"
    " ON CONFLICT (user_id) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen)",
    "mysql": "INSERT INTO realtime_presence (user_id, last_seen) VALUES (%s, %s)"
    " ON DUPLICATE KEY UPDATE last_seen = GREATEST(last_seen, VALUES(last_seen))",
}
# a row that may already be there is inserted only if no unique key holds it yet; `execute` then counts 0
INSERT_IF_NEW = {
    "sqlite": "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING",
    "mysql": "INSERT IGNORE INTO {} ({}) VALUES ({})",
}
# an unanswered claim of a key from a node that stopped mid-request becomes this request's claim:
# parameters request_hash, created_at, idem_key, stale_before
STALE_CLAIM_TAKEN_OVER = (
    "UPDATE realtime_idempotency_keys SET request_hash = %s, created_at = %s"
    " WHERE idem_key = %s AND status IS NULL AND created_at < %s"
)
# messages the reader has just read or that were deleted unread leave its unread count for the sender:
# parameters count, user_id, peer_id
UNREAD_LOWERED = "UPDATE realtime_conversations SET unread = unread - %s WHERE user_id = %s AND peer_id = %s"


class NotFound(Exception):
    """The thing asked for does not exist."""


class Forbidden(Exception):
    """The thing exists but this user may not act on it."""


@dataclass(frozen=True, slots=True)
class MessageDraft:
    sender_id: int
    recipient_id: int
    content: str
    client_msg_id: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    sender_id: int
    recipient_id: int
    content: str
    client_msg_id: str | None
    created_at: int
    status: str  # sent, delivered or read (for a deleted message: how far it got before)
    deleted_at: int | None = None  # set when its sender deleted it; its content is then ""


@dataclass(frozen=True, slots=True)
class Conversation:
    """One inbox entry: the peer, the last message exchanged with it, and how many of its messages are unread."""

    peer_id: int
    last_message: Message
    unread: int


@dataclass(frozen=True, slots=True)
class StoreResult:
    """The outcome of storing one draft."""

    message: Message | None  # None: the recipient does not exist, or has blocked the sender
    created: bool  # False: a message with the same clientMsgId was stored before
    blocked: bool = False  # True: the recipient has blocked the sender, so nothing was stored


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message that has just moved from sent to delivered."""

    message_id: int
    sender_id: int
    client_msg_id: str | None
    delivered_at: int


@dataclass(frozen=True, slots=True)
class ReadMark:
    message_id: int
    sender_id: int
    reader_id: int
    read_at: int


@dataclass(frozen=True, slots=True)
class Deletion:
    """A message its sender deleted: who must hear of it, and when it was deleted (the first time)."""

    message_id: int
    sender_id: int
    recipient_id: int
    deleted_at: int


@dataclass(frozen=True, slots=True)
class ConnectSummary:
    unread_messages: int
    unread_notifications: int
    backlog: list[Message]  # the first page of undelivered messages, oldest first


@dataclass(frozen=True, slots=True)
class NotificationDraft:
    user_id: int  # the recipient
    type: str  # post, comment or like
    actor_id: int
    post_id: int
    comment_id: int | None
    text: str
    created_at: int


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """What an `Idempotency-Key` already holds: the hash of its request and, once answered, the first answer."""

    request_hash: str
    status: int | None  # None: the first request is still being answered
    answer: str | None


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    user_id: int
    type: str
    actor_id: int
    post_id: int
    comment_id: int | None
    created_at: int
    text: str
    read: bool


class Storage:
    def __init__(self, engine: Any, blocks_cache_seconds: float = 5.0):
        """`blocks_cache_seconds`: how long a user's blocks, once read, are taken as they were (0: never cached)."""
        self.engine = engine
        self.dialect: str = engine.dialect
        self._known_users: dict[int, float] = {}  # user id -> monotonic time until which it counts as existing
        self._blocks_cache_seconds = blocks_cache_seconds
        # blocker id -> (monotonic time until which it holds, the ids that user has blocked)
        self._blocks: dict[int, tuple[float, frozenset[int]]] = {}

    # ------------------------------------------------------------ lifecycle

    def prepare(self) -> list[int]:
        """Create missing platform tables and migrate the service's own; return migrations applied."""

        def work(session: Session) -> list[int]:
            if self.dialect == "mysql":
                # several nodes may start at once: one migrates, the others wait for it
                session.query("SELECT GET_LOCK('realtime_schema', 60)")
            try:
                schema.create_platform_tables(session, self.dialect)
                return schema.migrate(session, self.dialect)
            finally:
                if self.dialect == "mysql":
                    session.query("SELECT RELEASE_LOCK('realtime_schema')")

        return self.engine.transaction(work, write=True)

    def schema_version(self) -> int:
        return self.engine.transaction(schema.schema_version)

    def check(self) -> None:
        """Raise unless the database answers a query."""
        self.engine.transaction(lambda session: session.query("SELECT 1"))

    def close(self) -> None:
        self.engine.close()

    # ------------------------------------------------------------ platform tables

    def add_users(self, users: Iterable[tuple[int, str]]) -> None:
        """Insert users that are not there yet (demo data and tests; the platform owns this table)."""
        self._insert_missing("users", ("id", "username"), list(users))

    def add_follows(self, follows: Iterable[tuple[int, int]]) -> None:
        """Insert (follower_id, followee_id) pairs that are not there yet."""
        self._insert_missing("follows", ("follower_id", "followee_id"), list(follows))

    def add_blocks(self, blocks: Iterable[tuple[int, int]]) -> None:
        """Insert (blocker_id, blocked_id) pairs that are not there yet (demo data and tests)."""
        self._insert_missing("blocks", ("blocker_id", "blocked_id"), list(blocks))

    def remove_blocks(self, blocks: Iterable[tuple[int, int]]) -> None:
        """Delete (blocker_id, blocked_id) pairs (tests: the platform owns this table)."""
        rows = list(blocks)
        if rows:
            sql = "DELETE FROM blocks WHERE blocker_id = %s AND blocked_id = %s"
            self.engine.transaction(lambda session: session.execute_many(sql, rows), write=True)

    def add_posts(self, posts: Iterable[tuple[int, int]]) -> None:
        """Insert (post_id, owner_id) posts that are not there yet."""
        self._insert_missing("posts", ("id", "user_id"), list(posts))

    def list_users(self, limit: int = 100) -> list[tuple[int, str]]:
        return self.engine.transaction(
            lambda s: [
                (int(i), name) for i, name in s.query("SELECT id, username FROM users ORDER BY id LIMIT %s", (limit,))
            ]
        )

    def _insert_missing(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        ignore = "INSERT OR IGNORE" if self.dialect == "sqlite" else "INSERT IGNORE"
        sql = f"{ignore} INTO {table} ({', '.join(columns)}) VALUES ({placeholders(len(columns))})"

        if rows:
            self.engine.transaction(lambda session: session.execute_many(sql, rows), write=True)

    # ------------------------------------------------------------ messages

    def store_messages(self, drafts: Sequence[MessageDraft]) -> list[StoreResult]:
        """Store a batch of drafts in one transaction, in order; idempotent per (sender, clientMsgId).

        A draft whose (sender, clientMsgId) was stored before, or earlier in the
        same batch, returns that message with `created=False` and stores nothing.
        Ids increase in batch order.
        """
        # one transaction: the messages and their inbox summaries are committed together
        return self.engine.transaction(lambda session: self._store_messages(session, drafts), write=True)

    def _store_messages(self, session: Session, drafts: Sequence[MessageDraft]) -> list[StoreResult]:
        recipients = {draft.recipient_id for draft in drafts}
        known = self._existing_users(session, recipients)
        blocks = self._blocks_of(session, recipients & known)
        existing = self._messages_by_client_id(
            session, {(d.sender_id, d.client_msg_id) for d in drafts if d.client_msg_id is not None}
        )
        results: list[StoreResult | None] = [None] * len(drafts)
        fresh: list[int] = []  # indexes of drafts to insert
        first_of_key: dict[tuple[int, str], int] = {}
        repeats: list[tuple[int, int]] = []  # (draft index, index of the earlier draft with its key)
        for index, draft in enumerate(drafts):
            if draft.recipient_id not in known:
                results[index] = StoreResult(message=None, created=False)
                continue
            if draft.sender_id in blocks[draft.recipient_id]:
                results[index] = StoreResult(message=None, created=False, blocked=True)
                continue
            key = (draft.sender_id, draft.client_msg_id) if draft.client_msg_id is not None else None
            if key in existing:
                results[index] = StoreResult(message=existing[key], created=False)
            elif key in first_of_key:
                repeats.append((index, first_of_key[key]))
            else:
                if key is not None:
                    first_of_key[key] = index
                fresh.append(index)

        ids = self._insert_messages(session, [drafts[index] for index in fresh])
        self._update_summaries(session, ids)
        for index, message_id in zip(fresh, ids):
            draft = drafts[index]
            message = Message(
                id=message_id,
                sender_id=draft.sender_id,
                recipient_id=draft.recipient_id,
                content=draft.content,
                client_msg_id=draft.client_msg_id,
                created_at=draft.created_at,
                status="sent",
            )
            results[index] = StoreResult(message=message, created=True)
        for index, earlier in repeats:
            results[index] = StoreResult(message=results[earlier].message, created=False)
        return results  # type: ignore[return-value]

    def _update_summaries(self, session: Session, ids: list[int]) -> None:
        """Add the messages `ids`, just inserted, to both sides' inbox summaries in one statement, not one per
        message: the database aggregates them, so the chat hot path sends two ids, not four values per side (a
        batch's ids are consecutive unless another write lane took some between its chunks: then all of them)."""
        if not ids:
            return
        if ids[-1] - ids[0] + 1 == len(ids):  # consecutive: no other message has an id between these
            where, params = "id BETWEEN %s AND %s", [ids[0], ids[-1]]
        else:
            where, params = f"id IN ({placeholders(len(ids))})", ids
        sides = schema.conversation_sides(where)
        session.execute(SUMMARY_UPSERT[self.dialect].format(sides + " ORDER BY user_id, peer_id"), params * 2)

    def _existing_users(self, session: Session, user_ids: set[int]) -> set[int]:
        """Which of `user_ids` are in `users`.

        Chat partners are looked up again and again; a user found is remembered
        for KNOWN_USER_SECONDS, so one deleted meanwhile may still be sent
        messages that long (they stay in the database, unread).
        """
        now = time.monotonic()
        known = {user_id for user_id in user_ids if self._known_users.get(user_id, 0.0) > now}
        unknown = sorted(user_ids - known)
        if unknown:
            rows = session.query(f"SELECT id FROM users WHERE id IN ({placeholders(len(unknown))})", unknown)
            found = {int(row[0]) for row in rows}
            if len(self._known_users) + len(found) > KNOWN_USERS_MAX:
                self._known_users.clear()
            self._known_users.update(dict.fromkeys(found, now + KNOWN_USER_SECONDS))
            known |= found
        return known

    def blocked_by(self, user_id: int) -> frozenset[int]:
        """The ids `user_id` has blocked (the `blocks` platform table), as cached by `_blocks_of`: a cached
        answer costs no transaction."""
        cached = self._cached_blocks({user_id}, time.monotonic())
        if user_id in cached:
            return cached[user_id]
        return self.engine.transaction(lambda session: self._blocks_of(session, {user_id}))[user_id]

    def _cached_blocks(self, user_ids: set[int], now: float) -> dict[int, frozenset[int]]:
        found: dict[int, frozenset[int]] = {}
        for user_id in user_ids:
            cached = self._blocks.get(user_id)
            if cached is not None and cached[0] > now:
                found[user_id] = cached[1]
        return found

    def _blocks_of(self, session: Session, user_ids: set[int]) -> dict[int, frozenset[int]]:
        """The ids each of `user_ids` has blocked.

        Every message and typing frame needs its recipient's blocks: they are
        read once per recipient and kept for `blocks_cache_seconds`, so a new
        block (or unblock) takes effect on each node within that time; a batch
        of messages reads those of all its recipients not cached in one query.
        """
        now = time.monotonic()
        found = self._cached_blocks(user_ids, now)
        missing = sorted(user_ids - found.keys())
        if not missing:
            return found
        rows = session.query(
            f"SELECT blocker_id, blocked_id FROM blocks WHERE blocker_id IN ({placeholders(len(missing))})", missing
        )
        read: dict[int, set[int]] = {user_id: set() for user_id in missing}
        for blocker_id, blocked_id in rows:
            read[int(blocker_id)].add(int(blocked_id))
        fresh = {user_id: frozenset(blocked) if blocked else NO_BLOCKS for user_id, blocked in read.items()}
        if self._blocks_cache_seconds > 0:
            if len(self._blocks) + len(fresh) > BLOCKS_CACHED_MAX:
                self._blocks.clear()
            until = now + self._blocks_cache_seconds
            self._blocks.update((user_id, (until, blocked)) for user_id, blocked in fresh.items())
        found.update(fresh)
        return found

    def _messages_by_client_id(self, session: Session, keys: set[tuple[int, str]]) -> dict[tuple[int, str], Message]:
        if not keys:
            return {}
        pairs = sorted(keys)
        rows = session.query(
            f"SELECT {MESSAGE_COLUMNS} FROM realtime_messages WHERE "
            + " OR ".join(["(sender_id = %s AND client_msg_id = %s)"] * len(pairs)),
            [value for pair in pairs for value in pair],
        )
        return {(message.sender_id, message.client_msg_id): message for message in map(_message, rows)}

    def _insert_messages(self, session: Session, drafts: list[MessageDraft]) -> list[int]:
        rows = [(d.sender_id, d.recipient_id, d.content, d.client_msg_id, "sent", d.created_at) for d in drafts]
        columns = ("sender_id", "recipient_id", "content", "client_msg_id", "status", "created_at")
        return self._insert_rows(session, "realtime_messages", columns, rows)

    def _insert_rows(self, session: Session, table: str, columns: Sequence[str], rows: list[tuple]) -> list[int]:
        """Insert rows in order and return their auto-increment ids in the same order.

        One multi-row statement per MAX_ROWS_PER_INSERT rows where the database
        gives a statement's rows consecutive ids (SQLite, MariaDB by default):
        they follow from the insert id, without reading a row back (reading
        them with RETURNING took 40 % more CPU: 8.3 ms instead of 5.1 per 500
        notifications); else where it returns ids (MariaDB 10.5), with
        RETURNING; otherwise (MySQL 8) one statement per row, still in the
        caller's one transaction.
        """
        if not rows:
            return []
        row_marks = f"({placeholders(len(columns))})"
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        consecutive = self.engine.consecutive_ids
        if not consecutive and not self.engine.supports_returning:
            return [session.insert(head + row_marks, row) for row in rows]
        ids: list[int] = []
        for start in range(0, len(rows), MAX_ROWS_PER_INSERT):
            chunk = rows[start : start + MAX_ROWS_PER_INSERT]
            values = head + ", ".join([row_marks] * len(chunk))
            if consecutive:
                reported = session.insert(values, [v for row in chunk for v in row])
                # SQLite reports the last row's id, MySQL and MariaDB the first one's
                first = reported - len(chunk) + 1 if self.dialect == "sqlite" else reported
                ids.extend(range(first, first + len(chunk)))
                continue
            returned = session.query(values + " RETURNING id", [v for row in chunk for v in row])
            # auto-increment ids grow in VALUES order, whatever order RETURNING lists them in
            ids.extend(sorted(int(row[0]) for row in returned))
        return ids

    def mark_delivered(self, messages: Sequence[Message], delivered_at: int) -> dict[int, Delivery]:
        """Move these messages from sent to delivered; return those that moved, by id.

        One UPDATE in the usual case, where all of them were still sent. When
        none moved, none is returned: another writer (another node, with a
        socket of the same recipient) may have stamped them with this very
        `delivered_at`. When some moved, the ones this call moved are those
        stamped with `delivered_at`.
        """
        by_id = {message.id: message for message in messages}
        ids = sorted(by_id)
        marks = placeholders(len(ids))
        moved = self.engine.transaction(
            lambda session: session.execute(
                f"UPDATE realtime_messages SET status = 'delivered', delivered_at = %s"
                f" WHERE id IN ({marks}) AND status = 'sent'",
                [delivered_at, *ids],
            ),
            write=True,
            single_statement=True,
        )
        if moved == 0:
            return {}
        if moved < len(ids):
            rows = self.engine.transaction(
                lambda session: session.query(
                    f"SELECT id FROM realtime_messages WHERE id IN ({marks})"
                    " AND status = 'delivered' AND delivered_at = %s",
                    [*ids, delivered_at],
                )
            )
            ids = [int(row[0]) for row in rows]
        return {
            message_id: Delivery(
                message_id=message_id,
                sender_id=by_id[message_id].sender_id,
                client_msg_id=by_id[message_id].client_msg_id,
                delivered_at=delivered_at,
            )
            for message_id in ids
        }

    def mark_read(self, reader_id: int, message_id: int, read_at: int) -> ReadMark | None:
        """Mark `message_id` and every earlier message from its sender to `reader_id` read.

        Returns None when `message_id` was deleted: the earlier ones are marked all the same, but no receipt may
        name a deleted message (deleted ones are never marked: their status is no longer unread).
        Raises `NotFound` for an unknown message, `Forbidden` unless `reader_id` is its recipient.
        """

        def work(session: Session) -> ReadMark | None:
            rows = session.query(DELETION_TARGET, (message_id,))
            if not rows:
                raise NotFound(f"message {message_id} does not exist")
            sender_id, recipient_id, deleted_at, _ = rows[0]
            if int(recipient_id) != reader_id:
                raise Forbidden(f"only the recipient may mark message {message_id} read")
            marked = session.execute(
                mark_read_statement(self.dialect), (read_at, read_at, reader_id, message_id, sender_id)
            )
            if marked:
                session.execute(UNREAD_LOWERED, (marked, reader_id, sender_id))
            if deleted_at is not None:
                return None
            return ReadMark(message_id=message_id, sender_id=int(sender_id), reader_id=reader_id, read_at=read_at)

        return self.engine.transaction(work, write=True)

    def delete_message(self, sender_id: int, message_id: int, deleted_at: int) -> Deletion:
        """Erase the content of `sender_id`'s message `message_id` and mark it deleted; the row keeps the rest.

        Deleting again changes nothing and returns the first deletion's time. Both statements go by primary key.
        Raises `NotFound` for an unknown message, `Forbidden` unless `sender_id` sent it.
        """
        # MariaDB: lock the row, so that of two deletions at once the second reads the first one's time
        lock = " FOR UPDATE" if self.dialect == "mysql" else ""  # SQLite: write transactions run one at a time

        def work(session: Session) -> Deletion:
            rows = session.query(DELETION_TARGET + lock, (message_id,))
            if not rows:
                raise NotFound(f"message {message_id} does not exist")
            sender, recipient, first_deleted_at, status = rows[0]
            if int(sender) != sender_id:
                raise Forbidden(f"only the sender may delete message {message_id}")
            if first_deleted_at is None:
                session.execute(ERASE_MESSAGE, (deleted_at, message_id))
                if status in UNREAD_STATUSES:  # its recipient will never read it now
                    session.execute(UNREAD_LOWERED, (1, recipient, sender_id))
            return Deletion(
                message_id=message_id,
                sender_id=sender_id,
                recipient_id=int(recipient),
                deleted_at=deleted_at if first_deleted_at is None else int(first_deleted_at),
            )

        return self.engine.transaction(work, write=True)

    def undelivered_messages(self, user_id: int, after_id: int = 0, limit: int = BACKLOG_PAGE) -> list[Message]:
        """Messages to `user_id` still in state sent, oldest first, with ids above `after_id`."""
        return self.engine.transaction(lambda session: _undelivered(session, self.dialect, user_id, after_id, limit))

    def history(self, user_id: int, other_id: int, before: int | None, limit: int) -> list[Message]:
        """The conversation between two users, `limit` messages older than `before`, oldest first."""
        sql, params = conversation_page_query(self.dialect, user_id, other_id, before, limit)
        rows = self.engine.transaction(lambda session: session.query(sql, params))
        return [_message(row) for row in reversed(rows)]

    def conversations(self, user_id: int, before: int | None, limit: int) -> list[Conversation]:
        """The user's inbox page: `limit` conversations whose last message is older than `before`, latest first."""
        rows = self.engine.transaction(
            lambda session: session.query(conversations_page_query(self.dialect), (user_id, before or NEWEST, limit))
        )
        return [Conversation(peer_id=int(row[0]), unread=int(row[1]), last_message=_message(row[2:])) for row in rows]

    def connect_summaries(self, user_ids: Sequence[int]) -> list[ConnectSummary | None]:
        """Unread counts and the first backlog page of each connecting user, in order; None for an unknown user.

        Connecting is frequent and comes in bursts: one statement reads the
        counts of every user connecting at the same moment; only users with
        unread messages need a second one for their backlog.
        """

        def work(session: Session) -> list[ConnectSummary | None]:
            wanted = sorted(set(user_ids))
            rows = session.query(unread_counts_query(len(wanted)), wanted)
            summaries = {
                int(user_id): ConnectSummary(
                    unread_messages=int(messages),
                    unread_notifications=int(notifications),
                    backlog=_undelivered(session, self.dialect, user_id, 0, BACKLOG_PAGE) if messages else [],
                )
                for user_id, messages, notifications in rows
            }
            return [summaries.get(user_id) for user_id in user_ids]

        return self.engine.transaction(work)

    # ------------------------------------------------------------ presence

    def record_last_seen(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Store (user id, ms of its last socket's close); a user keeps the latest it was ever given."""
        latest: dict[int, int] = {}
        for user_id, last_seen in pairs:
            latest[user_id] = max(last_seen, latest.get(user_id, last_seen))
        if latest:
            rows = sorted(latest.items())  # in key order, so two writers never wait on each other's rows crosswise
            sql = LAST_SEEN_UPSERT[self.dialect]
            self.engine.transaction(lambda session: session.execute_many(sql, rows), write=True)

    def last_seen(self, user_ids: Sequence[int]) -> dict[int, int]:
        """The stored lastSeen (ms) of those of `user_ids` that have one."""
        wanted = sorted(set(user_ids))
        if not wanted:
            return {}
        sql = f"SELECT user_id, last_seen FROM realtime_presence WHERE user_id IN ({placeholders(len(wanted))})"
        rows = self.engine.transaction(lambda session: session.query(sql, wanted))
        return {int(user_id): int(last_seen) for user_id, last_seen in rows}

    def presence_visible(self, watcher_id: int, user_ids: Sequence[int]) -> set[int]:
        """Which of `user_ids` the watcher may see online: those it follows or has a conversation with, unless they
        blocked it. One statement: two primary-key ranges (follows, realtime_conversations) and a primary-key
        lookup in `blocks` per user found."""
        wanted = sorted(set(user_ids))
        if not wanted:
            return set()
        marks = placeholders(len(wanted))
        sql = (
            "SELECT visible.id FROM ("
            f"SELECT followee_id AS id FROM follows WHERE follower_id = %s AND followee_id IN ({marks})"
            f" UNION SELECT peer_id FROM realtime_conversations WHERE user_id = %s AND peer_id IN ({marks})"
            ") AS visible WHERE NOT EXISTS"
            " (SELECT 1 FROM blocks WHERE blocks.blocker_id = visible.id AND blocks.blocked_id = %s)"
        )
        params = [watcher_id, *wanted, watcher_id, *wanted, watcher_id]
        rows = self.engine.transaction(lambda session: session.query(sql, params))
        return {int(row[0]) for row in rows}

    # ------------------------------------------------------------ notifications

    def notifications(self, user_id: int, before: int | None, limit: int) -> list[Notification]:
        """The user's newest stored notifications, newest first, with ids below `before`."""
        sql = notifications_page_query(self.dialect)
        rows = self.engine.transaction(lambda session: session.query(sql, (user_id, before or NEWEST, limit)))
        return [_notification(row) for row in rows]

    def store_notifications(self, drafts: Sequence[NotificationDraft]) -> list[Notification]:
        """Store one notification per draft in one transaction; return those stored, with their ids.

        A comment or like that its recipient already has (same post, actor and comment) is not stored again, nor
        returned: the unique index on `dedup_key` decides, so two requests at once store it once too.
        """

        def work(session: Session) -> list[int | None]:
            plain = [d for d in drafts if _dedup_key(d) is None]
            rows = [_row(d) for d in plain]
            ids = iter(self._insert_rows(session, "realtime_notifications", NOTIFICATION_INSERT, rows))
            return [next(ids) if _dedup_key(d) is None else self._insert_if_new(session, d) for d in drafts]

        ids = self.engine.transaction(work, write=True)
        return [
            Notification(
                id=notification_id,
                user_id=d.user_id,
                type=d.type,
                actor_id=d.actor_id,
                post_id=d.post_id,
                comment_id=d.comment_id,
                created_at=d.created_at,
                text=d.text,
                read=False,
            )
            for notification_id, d in zip(ids, drafts)
            if notification_id is not None
        ]

    def _insert_if_new(self, session: Session, draft: NotificationDraft) -> int | None:
        """Insert a notification with a `dedup_key`; its id, or None if its recipient already has it."""
        key = _dedup_key(draft)
        columns = (*NOTIFICATION_INSERT, "dedup_key")
        sql = INSERT_IF_NEW[self.dialect].format(
            "realtime_notifications", ", ".join(columns), placeholders(len(columns))
        )
        if not session.execute(sql, (*_row(draft), key)):
            return None
        rows = session.query(
            "SELECT id FROM realtime_notifications WHERE user_id = %s AND dedup_key = %s", (draft.user_id, key)
        )
        return int(rows[0][0])

    def followers(self, user_id: int, after_id: int, limit: int) -> list[int]:
        """Ids of the users who follow `user_id` (never `user_id` itself), ascending, above `after_id`."""
        rows = self.engine.transaction(
            lambda session: session.query(
                "SELECT DISTINCT follower_id FROM follows"
                " WHERE followee_id = %s AND follower_id > %s AND follower_id <> %s ORDER BY follower_id LIMIT %s",
                (user_id, after_id, user_id, limit),
            )
        )
        return [int(row[0]) for row in rows]

    def post_owner(self, post_id: int) -> int | None:
        rows = self.engine.transaction(
            lambda session: session.query("SELECT user_id FROM posts WHERE id = %s", (post_id,))
        )
        return int(rows[0][0]) if rows else None

    def username(self, user_id: int) -> str | None:
        rows = self.engine.transaction(
            lambda session: session.query("SELECT username FROM users WHERE id = %s", (user_id,))
        )
        return rows[0][0] if rows else None

    def mark_notifications_read(self, user_id: int, notification_id: int | None, read_at: int) -> None:
        """Mark one of the user's notifications read, or all of them when `notification_id` is None.

        Raises `NotFound` if the notification is not one of this user's.
        """

        def work(session: Session) -> None:
            if notification_id is None:
                session.execute(
                    "UPDATE realtime_notifications SET is_read = 1, read_at = %s WHERE user_id = %s AND is_read = 0",
                    (read_at, user_id),
                )
                return
            owned = session.query(
                "SELECT 1 FROM realtime_notifications WHERE id = %s AND user_id = %s", (notification_id, user_id)
            )
            if not owned:
                raise NotFound(f"notification {notification_id} does not exist")
            session.execute(
                "UPDATE realtime_notifications SET is_read = 1, read_at = %s WHERE id = %s AND is_read = 0",
                (read_at, notification_id),
            )

        self.engine.transaction(work, write=True)


    def mark_notification_list_read(self, user_id: int, notification_ids: Sequence[int], read_at: int) -> list[int]:
        """Mark those of `notification_ids` that are the user's read; return them, in the order named.

        Raises `NotFound` if none of them is one of this user's.
        """
        marks = placeholders(len(notification_ids))

        def work(session: Session) -> list[int]:
            rows = session.query(
                f"SELECT id FROM realtime_notifications WHERE user_id = %s AND id IN ({marks})",
                (user_id, *notification_ids),
            )
            owned = {int(row[0]) for row in rows}
            if not owned:
                raise NotFound("none of these notifications exists")
            session.execute(
                f"UPDATE realtime_notifications SET is_read = 1, read_at = %s"
                f" WHERE user_id = %s AND is_read = 0 AND id IN ({placeholders(len(owned))})",
                (read_at, user_id, *sorted(owned)),
            )
            return [notification_id for notification_id in notification_ids if notification_id in owned]

        return self.engine.transaction(work, write=True)

    # ------------------------------------------------------------ idempotency keys of the notify API

    def claim_idempotency_key(
        self, key: str, request_hash: str, now_ms: int, expired_before: int, stale_before: int
    ) -> IdempotencyRecord | None:
        """Claim `key` for a request (None), or return what it already holds. Of concurrent claims of one key
        exactly one gets None: the key is the primary key. Purges first, lazily, the keys created before
        `expired_before` (a range of the created_at index), and takes over this key's claim if it is still
        unanswered from before `stale_before` (its node stopped): by primary key, so no request scans the claims
        of the last 24 hours."""
        columns = "idem_key, request_hash, created_at"
        claim = INSERT_IF_NEW[self.dialect].format("realtime_idempotency_keys", columns, placeholders(3))

        def work(session: Session) -> IdempotencyRecord | None:
            session.execute("DELETE FROM realtime_idempotency_keys WHERE created_at < %s", (expired_before,))
            if session.execute(claim, (key, request_hash, now_ms)):
                return None
            if session.execute(STALE_CLAIM_TAKEN_OVER, (request_hash, now_ms, key, stale_before)):
                return None
            rows = session.query(
                "SELECT request_hash, status, answer FROM realtime_idempotency_keys WHERE idem_key = %s", (key,)
            )
            stored_hash, status, answer = rows[0]
            return IdempotencyRecord(_text(stored_hash), None if status is None else int(status), _text(answer))

        return self.engine.transaction(work, write=True)

    def record_idempotent_answer(self, key: str, status: int, answer: str) -> None:
        """Keep the first answer to the request that claimed `key`, for its repeats."""
        self.engine.transaction(
            lambda session: session.execute(
                "UPDATE realtime_idempotency_keys SET status = %s, answer = %s WHERE idem_key = %s",
                (status, answer, key),
            ),
            write=True,
            single_statement=True,
        )

    def release_idempotency_key(self, key: str) -> None:
        """Forget an unanswered claim (its request failed and stored nothing to answer for): a retry runs anew."""
        self.engine.transaction(
            lambda session: session.execute(
                "DELETE FROM realtime_idempotency_keys WHERE idem_key = %s AND status IS NULL", (key,)
            ),
            write=True,
            single_statement=True,
        )


NOTIFICATION_INSERT = ("user_id", "type", "actor_id", "post_id", "comment_id", "text", "is_read", "created_at")


def _row(d: NotificationDraft) -> tuple:
    """A draft's values in NOTIFICATION_INSERT order."""
    return (d.user_id, d.type, d.actor_id, d.post_id, d.comment_id, d.text, 0, d.created_at)


def _dedup_key(d: NotificationDraft) -> str | None:
    """What makes a repeated comment or like the same notification; None for a post, never deduplicated."""
    if d.type == "comment":
        return f"comment:{d.post_id}:{d.actor_id}:{d.comment_id}"
    if d.type == "like":
        return f"like:{d.post_id}:{d.actor_id}"
    return None


def _text(value: Any) -> Any:
    """Binary columns come back as bytes from MySQL."""
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value


def _notification(row: tuple) -> Notification:
    """A `Notification` from a row selected as NOTIFICATION_COLUMNS."""
    notification_id, user_id, kind, actor_id, post_id, comment_id, created_at, text, read = row
    return Notification(
        id=int(notification_id),
        user_id=int(user_id),
        type=kind,
        actor_id=int(actor_id),
        post_id=int(post_id),
        comment_id=None if comment_id is None else int(comment_id),
        created_at=int(created_at),
        text=text,
        read=bool(read),
    )


def by_index(dialect: str, table: str, index: str) -> str:
    """`table`, read by `index` only. The pages and receipts name their index: where two could serve, MariaDB
    takes a `ref` on the leading columns and filters `id` row by row (work that grows with the depth of the
    page), and SQLite's choice depends on statistics it may not have. SQLite also refuses a statement its index
    cannot serve, instead of scanning."""
    return f"{table} INDEXED BY {index}" if dialect == "sqlite" else f"{table} FORCE INDEX ({index})"


def mark_read_statement(dialect: str) -> str:
    """The UPDATE that marks read what `reader_id` has not yet read from `sender_id` up to `message_id`.

    Parameters: read_at, read_at, reader_id, message_id, sender_id. It walks the reader's unread messages
    (idx_messages_recipient_status, one range per unread status), so its work is what is still unread, not the
    whole conversation before the message: by (sender_id, recipient_id, id) a read receipt in a conversation of
    8,700 read messages took 40 ms on SQLite, holding the write lock all along.
    """
    return (
        f"UPDATE {by_index(dialect, 'realtime_messages', 'idx_messages_recipient_status')}"
        " SET status = 'read', read_at = %s, delivered_at = COALESCE(delivered_at, %s)"
        f" WHERE recipient_id = %s AND status IN {UNREAD} AND id <= %s AND sender_id = %s"
    )


def unread_counts_query(users: int) -> str:
    """(user id, unread messages, unread notifications) of `users` user ids.

    Each count reads only unread entries of a covering index, not every message the user ever received (as
    `status <> 'read'` did). One subquery per unread status, because MariaDB looks a correlated `IN` up by
    recipient_id alone.
    """
    unread_messages = " + ".join(
        f"(SELECT COUNT(*) FROM realtime_messages WHERE recipient_id = users.id AND status = '{status}')"
        for status in UNREAD_STATUSES
    )
    return (
        f"SELECT id, {unread_messages},"
        " (SELECT COUNT(*) FROM realtime_notifications WHERE user_id = users.id AND is_read = 0)"
        f" FROM users WHERE id IN ({placeholders(users)})"
    )


def conversation_page_query(
    dialect: str, user_id: int, other_id: int, before: int | None, limit: int
) -> tuple[str, tuple]:
    """The SQL and parameters of a conversation page: the `limit` newest messages older than `before`, newest first.

    Each direction is its own range scan on idx_messages_conversation (sender_id, recipient_id, id), read
    backwards from `before` and stopped after `limit` rows; the union of those two short lists is then cut to
    `limit`. A page thus costs at most 2 x `limit` index entries and rows, however long the conversation. An OR
    of both directions instead made SQLite read and sort the whole conversation (MULTI-INDEX OR, TEMP B-TREE
    FOR ORDER BY); and MariaDB, unless the index is named (`by_index`), scanned (sender_id, recipient_id)
    from the newest message down to the page. A user talking to itself has one direction only. Plans and work
    per page: tests/integration/test_storage.py.
    """
    directions = [(user_id, other_id)] if user_id == other_id else [(user_id, other_id), (other_id, user_id)]
    where = "WHERE sender_id = %s AND recipient_id = %s AND id < %s ORDER BY id DESC LIMIT %s"
    messages = by_index(dialect, "realtime_messages", "idx_messages_conversation")
    member = UNION_MEMBER[dialect].format(f"SELECT {MESSAGE_COLUMNS} FROM {messages} {where}")
    before_id = before or NEWEST
    params = [value for sender, recipient in directions for value in (sender, recipient, before_id, limit)]
    return " UNION ALL ".join([member] * len(directions)) + " ORDER BY id DESC LIMIT %s", (*params, limit)


def conversations_page_query(dialect: str) -> str:
    """An inbox page, latest activity first: parameters user_id, before, limit.

    A range of idx_conversations_recent (user_id, last_message_id) read backwards from `before` and stopped
    after a page, each last message joined by primary key: a page's work is its size, however many conversations
    the user has and however long they are. Plans: tests/integration/test_storage.py.
    """
    return (
        f"SELECT peer_id, unread, {MESSAGE_COLUMNS}"
        f" FROM {by_index(dialect, 'realtime_conversations', 'idx_conversations_recent')}"
        " JOIN realtime_messages ON realtime_messages.id = last_message_id"
        " WHERE user_id = %s AND last_message_id < %s ORDER BY last_message_id DESC LIMIT %s"
    )


def undelivered_query(dialect: str) -> str:
    """A page of a user's undelivered messages, oldest first: parameters user_id, after_id, limit."""
    return (
        f"SELECT {MESSAGE_COLUMNS} FROM {by_index(dialect, 'realtime_messages', 'idx_messages_recipient_status')}"
        " WHERE recipient_id = %s AND status = 'sent' AND id > %s ORDER BY id LIMIT %s"
    )


def notifications_page_query(dialect: str) -> str:
    """A page of a user's notifications, newest first: parameters user_id, before, limit."""
    return (
        f"SELECT {NOTIFICATION_COLUMNS} FROM {by_index(dialect, 'realtime_notifications', 'idx_notifications_user')}"
        " WHERE user_id = %s AND id < %s ORDER BY id DESC LIMIT %s"
    )


def _undelivered(session: Session, dialect: str, user_id: int, after_id: int, limit: int) -> list[Message]:
    return [_message(row) for row in session.query(undelivered_query(dialect), (user_id, after_id, limit))]


def _message(row: tuple) -> Message:
    """A `Message` from a row selected as MESSAGE_COLUMNS; a deleted one's status is read from its times."""
    message_id, sender, recipient, content, client_msg_id, created_at, status, delivered_at, read_at, deleted = row
    if status == DELETED:
        status = "read" if read_at is not None else "delivered" if delivered_at is not None else "sent"
    return Message(
        id=int(message_id),
        sender_id=int(sender),
        recipient_id=int(recipient),
        content=content,
        client_msg_id=_text(client_msg_id),
        created_at=int(created_at),
        status=status,
        deleted_at=None if deleted is None else int(deleted),
    )
