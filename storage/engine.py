"""Database engines: where and how a unit of SQL work runs.

Both engines expose `transaction(work, write=...)`: `work(session)` runs inside
one transaction, committed when it returns and rolled back when it raises.
Queries are written once with `%s` placeholders; the SQLite session
translates them.

- `MysqlEngine`: PyMySQL connections from a DBUtils pool, used in the calling
  greenlet (gevent makes their sockets cooperative), so slow queries only hold
  their own greenlet and one pooled connection.
- `SqliteEngine`: the embedded default. SQLite calls block the OS thread, so
  they run on a small thread pool, each thread with its own connection, in WAL
  mode with `synchronous=FULL` so a committed row survives a crash.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import metrics

T = TypeVar("T")
log = logging.getLogger(__name__)
WAL_ATTEMPTS = 3  # tries at switching a new SQLite file to WAL while other processes do the same


class StorageUnavailable(Exception):
    """The database cannot be reached or is too busy; the operation may be retried later."""


class Session:
    """One transaction's cursor with `%s` placeholders on every backend."""

    def __init__(self, cursor: Any, translate: Callable[[str], str]):
        self._cursor = cursor
        self._translate = translate
        self.wrote = False  # a statement that may change data has been sent

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""
        self.wrote = True
        self._cursor.execute(self._translate(sql), params)
        return self._cursor.rowcount

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT of one row; return its auto-increment id."""
        self.wrote = True
        self._cursor.execute(self._translate(sql), params)
        return self._cursor.lastrowid

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement per row (PyMySQL sends an INSERT's rows as one multi-row statement)."""
        self.wrote = True
        self._cursor.executemany(self._translate(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a statement that returns rows: a SELECT, or a write with RETURNING."""
        if not sql.lstrip("(").startswith("SELECT"):  # a UNION of parenthesised SELECTs reads too
            self.wrote = True
        self._cursor.execute(self._translate(sql), params)
        return list(self._cursor.fetchall())


def placeholders(count: int) -> str:
    """`%s, %s, ...` for an IN list or VALUES row of `count` values."""
    return ", ".join(["%s"] * count)


class SqliteEngine:
    dialect = "sqlite"
    # one writer at a time: a multi-row INSERT's rows take consecutive ids in VALUES order, so none is read back
    consecutive_ids = True
    supports_returning = False  # not needed, for the same reason
    write_lanes = 1  # SQLite has one writer at a time anyway

    def __init__(self, path: str, threads: int = 4):
        from gevent.threadpool import ThreadPool

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._threads = ThreadPool(threads)
        # A real thread-local: the pool's workers are OS threads even under monkey-patching.
        self._local = _original_thread_local()
        self._translations: dict[str, str] = {}
        self.in_use = 0  # transactions running or waiting for a worker thread

    def transaction(self, work: Callable[[Session], T], write: bool = False, single_statement: bool = False) -> T:
        """Run `work` in one transaction (`single_statement` is for MySQL: SQLite always uses a transaction)."""
        self.in_use += 1
        submitted = time.monotonic()
        try:
            result, error, started = self._threads.apply(self._run, (work, write))
        finally:
            self.in_use -= 1
        # metrics are updated here, in the hub's thread, never in a worker thread
        metrics.db_pool_wait_seconds.observe(started - submitted)
        if error is not None:
            if isinstance(error, StorageUnavailable):
                metrics.db_errors.inc()
            raise error
        return result

    def close(self) -> None:
        self._threads.kill()

    def _run(self, work: Callable[[Session], T], write: bool) -> tuple[T | None, Exception | None, float]:
        """In a worker thread: (result, None, start time) or (None, the exception, start time). An exception
        escaping a worker thread would be printed by gevent's hub to stderr, outside logging."""
        started = time.monotonic()
        try:
            return self._transaction(work, write), None, started
        except Exception as error:
            return None, error, started

    def _transaction(self, work: Callable[[Session], T], write: bool) -> T:
        connection = self._connection()
        cursor = connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            result = work(Session(cursor, self._translate))
            connection.commit()
            return result
        except BaseException as error:
            connection.rollback()
            if isinstance(error, sqlite3.OperationalError) and _sqlite_unavailable(error):
                raise StorageUnavailable(f"sqlite: {error}") from error
            raise
        finally:
            cursor.close()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._path, timeout=10, isolation_level=None, check_same_thread=False)
            _use_wal(connection)
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=OFF")
            self._local.connection = connection
        return connection

    def _translate(self, sql: str) -> str:
        translated = self._translations.get(sql)
        if translated is None:
            translated = self._translations[sql] = sql.replace("%s", "?")
        return translated


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switch the file to WAL (a no-op once it is). On a new file another process may be switching it at the
    same moment (two nodes starting together): SQLite then refuses at once, without the busy timeout, so wait
    for that process's lock with an empty write transaction, whose BEGIN IMMEDIATE does wait, and try again."""
    for attempt in range(1, WAL_ATTEMPTS + 1):
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if attempt == WAL_ATTEMPTS or "locked" not in str(error).lower():
                raise
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("COMMIT")


def _sqlite_unavailable(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return any(sign in text for sign in ("locked", "busy", "unable to open", "disk i/o", "readonly"))


def _original_thread_local() -> Any:
    try:
        from gevent import monkey

        return monkey.get_original("threading", "local")()
    except ImportError:  # pragma: no cover - gevent is a hard dependency
        return threading.local()


class MysqlEngine:
    dialect = "mysql"

    def __init__(
        self, host: str, port: int, user: str, password: str, database: str, pool_size: int, write_lanes: int = 1
    ):
        """`write_lanes` group-commit pipelines run at once (see storage.batching); the pool is opened in full
        now, so the first busy second does not pay for connecting."""
        import pymysql
        from dbutils.pooled_db import PooledDB

        self._errors = pymysql.err
        self._pool = PooledDB(
            creator=pymysql,
            maxconnections=pool_size,
            mincached=pool_size,
            maxcached=pool_size,
            blocking=True,
            ping=0,  # no round trip per checkout: a dead connection is reopened when it fails (see transaction)
            reset=False,  # every transaction ends in our commit or rollback: no extra ROLLBACK on return
            host=host,
            port=port,
            user=user,
            password=password,
            database=database,
            charset="utf8mb4",
            autocommit=True,  # reads need no COMMIT round trip; writes open a transaction with begin()
            connect_timeout=5,
            read_timeout=30,
            write_timeout=30,
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )
        self.in_use = 0  # transactions holding or waiting for a pooled connection
        self._attempts = pool_size + 1  # one per pooled connection that may be dead, and a reopened one
        self.supports_returning = self.transaction(_server_supports_returning)
        self.consecutive_ids = self.transaction(_server_gives_consecutive_ids)
        self.write_lanes = write_lanes

    def transaction(self, work: Callable[[Session], T], write: bool = False, single_statement: bool = False) -> T:
        """Reads run as autocommit statements; writes inside BEGIN ... COMMIT, unless `single_statement` says
        the work writes with one statement at most, which commits by itself without those two round trips.

        A pooled connection the server has dropped (a database restart) fails
        on first use; DBUtils then reopens it, and the work is run again, on
        the next pooled connection, until one works or each has failed once
        (after a restart every pooled connection is dead, and a transaction may
        meet them one after another). That is safe because nothing of a failed
        attempt was committed: a failure after a write statement was sent
        outside a transaction, or during the commit, is never retried.
        """
        atomic = write and not single_statement
        self.in_use += 1
        try:
            return self._transaction(work, atomic)
        finally:
            self.in_use -= 1

    def _transaction(self, work: Callable[[Session], T], atomic: bool) -> T:
        for attempt in range(self._attempts):
            waited_from = time.monotonic()
            try:
                connection = self._pool.connection()
            except self._errors.MySQLError as error:
                metrics.db_errors.inc()
                raise StorageUnavailable(f"mysql: {error}") from error
            metrics.db_pool_wait_seconds.observe(time.monotonic() - waited_from)
            cursor = connection.cursor()
            session = Session(cursor, _same)
            committing = False
            try:
                if atomic:
                    connection.begin()  # also stops DBUtils from silently reconnecting mid-transaction
                result = work(session)
                if atomic:
                    committing = True
                    connection.commit()
                return result
            except BaseException as error:
                if atomic:
                    try:
                        connection.rollback()  # on a dead connection DBUtils reopens it here
                    except self._errors.MySQLError:
                        pass
                if not isinstance(error, (self._errors.OperationalError, self._errors.InterfaceError)):
                    raise
                if attempt == self._attempts - 1 or committing or (session.wrote and not atomic):
                    metrics.db_errors.inc()
                    raise StorageUnavailable(f"mysql: {error}") from error
                log.info("mysql: retrying on a fresh connection after: %s", error)
            finally:
                cursor.close()
                connection.close()
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._pool.close()


def _same(sql: str) -> str:
    return sql


def _server_gives_consecutive_ids(session: Session) -> bool:
    """Whether a multi-row INSERT ... VALUES takes consecutive ids in VALUES order, the first one reported as the
    insert id: InnoDB's auto-increment lock modes 0 and 1 (MariaDB's default) allocate them at once for an insert
    whose row count is known; mode 2 (MySQL 8's default) may interleave other statements' ids."""
    mode, increment = session.query("SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment")[0]
    return int(mode) in (0, 1) and int(increment) == 1


def _server_supports_returning(session: Session) -> bool:
    """MariaDB 10.5 and later answer `INSERT ... RETURNING`; MySQL does not."""
    (version,) = session.query("SELECT VERSION()")[0]
    if "mariadb" not in version.lower():
        return False
    major, minor = (int(part) for part in version.split("-")[0].split(".")[:2])
    return (major, minor) >= (10, 5)
