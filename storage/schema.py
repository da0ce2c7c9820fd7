"""Tables: the platform's (created only where missing) and the service's own (migrated).

The platform tables belong to the main web application; the service reads
only the columns the contract names, so tables with more columns work as
they are. The service's own tables are prefixed `realtime_` and versioned in
`realtime_schema_version`: each start applies the migrations not yet
recorded, and a second start changes nothing.

Times are UTC epoch milliseconds (BIGINT) on every backend.
"""

from __future__ import annotations

import time

from storage.engine import Session

PLATFORM_TABLES = {
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, username VARCHAR(100) NOT NULL)",
        "CREATE TABLE IF NOT EXISTS follows (follower_id BIGINT NOT NULL, followee_id BIGINT NOT NULL,"
        " PRIMARY KEY (follower_id, followee_id))",
        "CREATE INDEX IF NOT EXISTS idx_follows_followee ON follows (followee_id, follower_id)",
        "CREATE TABLE IF NOT EXISTS posts (id INTEGER PRIMARY KEY, user_id BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS idx_posts_user ON posts (user_id)",
        "CREATE TABLE IF NOT EXISTS blocks (blocker_id BIGINT NOT NULL, blocked_id BIGINT NOT NULL,"
        " PRIMARY KEY (blocker_id, blocked_id))",
        "CREATE INDEX IF NOT EXISTS idx_blocks_blocked ON blocks (blocked_id, blocker_id)",
    ],
    "mysql": [
        "CREATE TABLE IF NOT EXISTS users (id BIGINT NOT NULL PRIMARY KEY, username VARCHAR(100) NOT NULL)"
        " DEFAULT CHARSET=utf8mb4",
        "CREATE TABLE IF NOT EXISTS follows (follower_id BIGINT NOT NULL, followee_id BIGINT NOT NULL,"
        " PRIMARY KEY (follower_id, followee_id), KEY idx_follows_followee (followee_id, follower_id))",
        "CREATE TABLE IF NOT EXISTS posts (id BIGINT NOT NULL PRIMARY KEY, user_id BIGINT NOT NULL,"
        " KEY idx_posts_user (user_id))",
        "CREATE TABLE IF NOT EXISTS blocks (blocker_id BIGINT NOT NULL, blocked_id BIGINT NOT NULL,"
        " PRIMARY KEY (blocker_id, blocked_id), KEY idx_blocks_blocked (blocked_id, blocker_id))",
    ],
}

VERSION_TABLE = {
    "sqlite": "CREATE TABLE IF NOT EXISTS realtime_schema_version"
    " (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
    "mysql": "CREATE TABLE IF NOT EXISTS realtime_schema_version"
    " (version INT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)",
}



def conversation_sides(where: str) -> str:
    """(user_id, peer_id, last message id, unread) of both sides of every pair among the messages `where`
    selects (a talk to oneself is one side); unread counts what the recipient has not read (a deleted message's
    status is 'deleted': not counted). Fills the summaries at migration, and keeps them as messages are stored."""
    return (
        "SELECT user_id, peer_id, MAX(id) AS last_id, SUM(unread) AS unread_added FROM ("
        "SELECT recipient_id AS user_id, sender_id AS peer_id, id,"
        f" CASE WHEN status IN ('sent', 'delivered') THEN 1 ELSE 0 END AS unread FROM realtime_messages WHERE {where}"
        " UNION ALL"
        f" SELECT sender_id, recipient_id, id, 0 FROM realtime_messages WHERE ({where}) AND sender_id <> recipient_id"
        ") AS sides WHERE 1 = 1 GROUP BY user_id, peer_id"  # SQLite parses an upsert's SELECT only with a WHERE
    )


CONVERSATIONS_BACKFILL = (
    "INSERT INTO realtime_conversations (user_id, peer_id, last_message_id, unread) " + conversation_sides("1 = 1")
)

# version -> dialect -> statements. Never edit a released migration; add the next one.
# Statements are idempotent (IF NOT EXISTS) because MySQL DDL cannot be rolled back.
MIGRATIONS: list[tuple[int, dict[str, list[str]]]] = [
    (
        1,
        {
            "sqlite": [
                "CREATE TABLE IF NOT EXISTS realtime_messages ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " sender_id BIGINT NOT NULL,"
                " recipient_id BIGINT NOT NULL,"
                " content TEXT NOT NULL,"
                " client_msg_id TEXT NULL,"
                " status VARCHAR(9) NOT NULL DEFAULT 'sent',"
                " created_at BIGINT NOT NULL,"
                " delivered_at BIGINT NULL,"
                " read_at BIGINT NULL)",
                "CREATE UNIQUE INDEX IF NOT EXISTS uq_messages_sender_client"
                " ON realtime_messages (sender_id, client_msg_id)",
                "CREATE INDEX IF NOT EXISTS idx_messages_recipient_status"
                " ON realtime_messages (recipient_id, status, id)",
                "CREATE INDEX IF NOT EXISTS idx_messages_conversation"
                " ON realtime_messages (sender_id, recipient_id, id)",
                "CREATE TABLE IF NOT EXISTS realtime_notifications ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " user_id BIGINT NOT NULL,"
                " type VARCHAR(16) NOT NULL,"
                " actor_id BIGINT NOT NULL,"
                " post_id BIGINT NOT NULL,"
                " comment_id BIGINT NULL,"
                " text TEXT NOT NULL,"
                " is_read SMALLINT NOT NULL DEFAULT 0,"
                " created_at BIGINT NOT NULL,"
                " read_at BIGINT NULL)",
                "CREATE INDEX IF NOT EXISTS idx_notifications_user_read"
                " ON realtime_notifications (user_id, is_read, id)",
                "CREATE INDEX IF NOT EXISTS idx_notifications_user ON realtime_notifications (user_id, id)",
            ],
            "mysql": [
                # client_msg_id is binary so that ids differing only in case or trailing spaces stay distinct
                "CREATE TABLE IF NOT EXISTS realtime_messages ("
                " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                " sender_id BIGINT NOT NULL,"
                " recipient_id BIGINT NOT NULL,"
                " content TEXT NOT NULL,"
                " client_msg_id VARBINARY(256) NULL,"
                " status VARCHAR(9) NOT NULL DEFAULT 'sent',"
                " created_at BIGINT NOT NULL,"
                " delivered_at BIGINT NULL,"
                " read_at BIGINT NULL,"
                " UNIQUE KEY uq_messages_sender_client (sender_id, client_msg_id),"
                " KEY idx_messages_recipient_status (recipient_id, status, id),"
                " KEY idx_messages_conversation (sender_id, recipient_id, id)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                "CREATE TABLE IF NOT EXISTS realtime_notifications ("
                " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
                " user_id BIGINT NOT NULL,"
                " type VARCHAR(16) NOT NULL,"
                " actor_id BIGINT NOT NULL,"
                " post_id BIGINT NOT NULL,"
                " comment_id BIGINT NULL,"
                " text TEXT NOT NULL,"
                " is_read TINYINT NOT NULL DEFAULT 0,"
                " created_at BIGINT NOT NULL,"
                " read_at BIGINT NULL,"
                " KEY idx_notifications_user_read (user_id, is_read, id),"
                " KEY idx_notifications_user (user_id, id)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            ],
        },
    ),
    (
        2,
        {
            # a message its sender deleted: content erased to '', status 'deleted' (out of every unread count,
            # backlog and receipt, which read status), deleted_at the time of the deletion
            "sqlite": ["ALTER TABLE realtime_messages ADD COLUMN deleted_at BIGINT NULL"],
            "mysql": ["ALTER TABLE realtime_messages ADD COLUMN IF NOT EXISTS deleted_at BIGINT NULL"],
        },
    ),
    (
        3,
        {
            # the inbox: per user and peer, the last message between them and what the user has not read of it;
            # kept by the statements that store, read and delete messages (storage.store), filled here once
            "sqlite": [
                "CREATE TABLE IF NOT EXISTS realtime_conversations ("
                " user_id BIGINT NOT NULL,"
                " peer_id BIGINT NOT NULL,"
                " last_message_id BIGINT NOT NULL,"
                " unread INTEGER NOT NULL DEFAULT 0,"
                " PRIMARY KEY (user_id, peer_id))",
                "CREATE INDEX IF NOT EXISTS idx_conversations_recent"
                " ON realtime_conversations (user_id, last_message_id)",
                "DELETE FROM realtime_conversations",
                CONVERSATIONS_BACKFILL,
            ],
            "mysql": [
                "CREATE TABLE IF NOT EXISTS realtime_conversations ("
                " user_id BIGINT NOT NULL,"
                " peer_id BIGINT NOT NULL,"
                " last_message_id BIGINT NOT NULL,"
                " unread INT NOT NULL DEFAULT 0,"
                " PRIMARY KEY (user_id, peer_id),"
                " KEY idx_conversations_recent (user_id, last_message_id)"
                ") ENGINE=InnoDB",
                "DELETE FROM realtime_conversations",  # DDL commits: a start that failed half way fills it afresh
                CONVERSATIONS_BACKFILL,
            ],
        },
    ),
    (
        4,
        {
            # presence: when each user's last socket closed (the latest known), for `lastSeen`
            "sqlite": [
                "CREATE TABLE IF NOT EXISTS realtime_presence (user_id BIGINT NOT NULL PRIMARY KEY,"
                " last_seen BIGINT NOT NULL)"
            ],
            "mysql": [
                "CREATE TABLE IF NOT EXISTS realtime_presence (user_id BIGINT NOT NULL PRIMARY KEY,"
                " last_seen BIGINT NOT NULL) ENGINE=InnoDB"
            ],
        },
    ),
    (
        5,
        {
            # the notify API's repeats: `dedup_key` names what a repeated comment or like is the same as (NULL for
            # posts: NULLs never collide), so the unique index stores it once; and the `Idempotency-Key`s of the
            # last 24 hours with the request's hash and the first answer (status NULL: still being answered)
            "sqlite": [
                "ALTER TABLE realtime_notifications ADD COLUMN dedup_key VARCHAR(200) NULL",
                "CREATE UNIQUE INDEX IF NOT EXISTS uq_notifications_dedup"
                " ON realtime_notifications (user_id, dedup_key)",
                "CREATE TABLE IF NOT EXISTS realtime_idempotency_keys ("
                " idem_key VARCHAR(128) NOT NULL PRIMARY KEY,"
                " request_hash CHAR(64) NOT NULL,"
                " status INTEGER NULL,"
                " answer TEXT NULL,"
                " created_at BIGINT NOT NULL)",
                "CREATE INDEX IF NOT EXISTS idx_idempotency_created ON realtime_idempotency_keys (created_at)",
            ],
            "mysql": [
                "ALTER TABLE realtime_notifications ADD COLUMN IF NOT EXISTS dedup_key VARBINARY(200) NULL",
                "CREATE UNIQUE INDEX IF NOT EXISTS uq_notifications_dedup"
                " ON realtime_notifications (user_id, dedup_key)",
                "CREATE TABLE IF NOT EXISTS realtime_idempotency_keys ("
                " idem_key VARBINARY(128) NOT NULL PRIMARY KEY,"
                " request_hash CHAR(64) NOT NULL,"
                " status SMALLINT NULL,"
                " answer TEXT NULL,"
                " created_at BIGINT NOT NULL,"
                " KEY idx_idempotency_created (created_at)"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            ],
        },
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]


def create_platform_tables(session: Session, dialect: str) -> None:
    for statement in PLATFORM_TABLES[dialect]:
        session.execute(statement)


def migrate(session: Session, dialect: str) -> list[int]:
    """Apply the migrations newer than the recorded version; return those applied."""
    session.execute(VERSION_TABLE[dialect])
    current = schema_version(session)
    applied = []
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for statement in statements[dialect]:
            session.execute(statement)
        session.execute(
            "INSERT INTO realtime_schema_version (version, applied_at) VALUES (%s, %s)",
            (version, int(time.time() * 1000)),
        )
        applied.append(version)
    return applied


def schema_version(session: Session) -> int:
    (current,) = session.query("SELECT COALESCE(MAX(version), 0) FROM realtime_schema_version")[0]
    return current
