"""Persistence: the SQL, the engines that run it, and the group-commit writers.

`open_storage(settings)` builds the `Storage` for `[database]`; nothing
outside this package writes SQL. Other packages use the names exported here
and `storage.batching`'s `Batcher`, never the modules behind them.

May import only the layers below it (`protocol`, `settings`, `metrics`,
`greenlets`); it needs only `metrics`. The records it returns are plain
frozen dataclasses that every layer above passes around as they are.
"""

from storage.engine import MysqlEngine, SqliteEngine, StorageUnavailable
from storage.store import (
    BACKLOG_PAGE,
    ConnectSummary,
    Conversation,
    Deletion,
    Delivery,
    Forbidden,
    IdempotencyRecord,
    Message,
    MessageDraft,
    NotFound,
    Notification,
    NotificationDraft,
    ReadMark,
    Storage,
    StoreResult,
)

__all__ = [
    "BACKLOG_PAGE",
    "ConnectSummary",
    "Conversation",
    "Deletion",
    "Delivery",
    "Forbidden",
    "IdempotencyRecord",
    "Message",
    "MessageDraft",
    "NotFound",
    "Notification",
    "NotificationDraft",
    "ReadMark",
    "Storage",
    "StorageUnavailable",
    "StoreResult",
    "open_storage",
]


def open_storage(database) -> Storage:
    """A `Storage` on the backend that `database` (`settings.DatabaseSettings`) names."""
    if database.backend == "mysql":
        engine = MysqlEngine(
            host=database.host,
            port=database.port,
            user=database.user,
            password=database.password,
            database=database.name,
            pool_size=database.pool_size,
            write_lanes=database.write_lanes,
        )
    else:
        engine = SqliteEngine(database.path)
    return Storage(engine, database.blocks_cache_seconds)
