"""Throwaway MariaDB server for integration tests.

Usage::

    db = start_mariadb(tmp_path)
    try:
        db.create_database("chat")
        conn = pymysql.connect(host=db.host, port=db.port, user=db.user,
                               password=db.password, database="chat")
        ...
    finally:
        db.stop()

The server runs with ``--no-defaults`` on a private datadir, a free loopback
port and its own unix socket, so it never touches a system-wide MariaDB.
Install the binaries with ``scripts/install-system-deps.sh``.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pymysql

_BIN_DIRS = ("/usr/sbin", "/usr/bin")
# sun_path is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_POLL_INTERVAL = 0.05
_STOP_TIMEOUT = 30.0
_LOG_TAIL_LINES = 40


def _find_binary(name: str) -> str:
    """Return the path of ``name`` from PATH or the usual sbin/bin dirs."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_BIN_DIRS])
    found = shutil.which(name, path=path)
    if found is None:
        raise RuntimeError(
            f"{name} not found; run scripts/install-system-deps.sh to install MariaDB"
        )
    return found


def _free_port() -> int:
    """Return a currently unused TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user_flags() -> list[str]:
    """mariadbd refuses to run as root unless told to explicitly."""
    return ["--user=root"] if os.geteuid() == 0 else []


def _quote_ident(name: str) -> str:
    """Quote an SQL identifier with backticks."""
    return "`" + name.replace("`", "``") + "`"


def _log_tail(path: pathlib.Path) -> str:
    """Return the last lines of ``path``, or a note if it does not exist."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


class MariaDB:
    """A throwaway mariadbd process; create it with :func:`start_mariadb`."""

    host = "127.0.0.1"
    user = "realtime"

    def __init__(self, base_dir: pathlib.Path, timeout: float) -> None:
        self.base_dir = base_dir
        self.datadir = base_dir / "data"
        self.error_log = base_dir / "error.log"
        self.pid_file = base_dir / "mariadbd.pid"
        self.port = _free_port()
        self.password = secrets.token_urlsafe(16)
        self.timeout = timeout
        self.socket = base_dir / "mysql.sock"
        # A too-long socket path makes mariadbd fail at startup; fall back to
        # a short private directory, created on start and removed on stop.
        self._use_short_socket = len(os.fsencode(self.socket)) > _MAX_SOCKET_PATH
        self._short_socket_dir: str | None = None
        self._mariadbd = _find_binary("mariadbd")
        self._proc: subprocess.Popen[bytes] | None = None

    def _initialise(self) -> None:
        """Create a fresh datadir with mariadb-install-db."""
        install_db = _find_binary("mariadb-install-db")
        if self.datadir.exists():
            raise RuntimeError(f"{self.datadir} already exists; use an empty base_dir")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # Own session, so a timeout also kills the bootstrap mariadbd it spawns.
        proc = subprocess.Popen(
            [
                install_db,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                *_user_flags(),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            reason = f"timed out after {self.timeout}s"
        else:
            if proc.returncode == 0:
                return
            reason = f"exited with code {proc.returncode}"
        text = output.decode(errors="replace")
        raise RuntimeError(f"mariadb-install-db {reason}:\n{text}")

    def start(self) -> None:
        """Start mariadbd on the datadir and port and wait until it is ready."""
        if self._proc is not None and self._proc.poll() is None:
            return
        if self._use_short_socket:
            self._short_socket_dir = tempfile.mkdtemp(prefix="mariadb-")
            self.socket = pathlib.Path(self._short_socket_dir, "mysql.sock")
        with open(self.error_log, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    self._mariadbd,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    f"--socket={self.socket}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    "--skip-name-resolve",
                    f"--pid-file={self.pid_file}",
                    f"--log-error={self.error_log}",
                    "--innodb-buffer-pool-size=128M",
                    "--max-connections=500",
                    *_user_flags(),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        try:
            self._wait_until_ready(self._proc)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it does not exit in time."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=_STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._short_socket_dir is not None:
            shutil.rmtree(self._short_socket_dir, ignore_errors=True)
            self._short_socket_dir = None

    def create_database(self, name: str) -> None:
        """Create database ``name`` (utf8mb4) unless it already exists."""
        self._execute(
            f"CREATE DATABASE IF NOT EXISTS {_quote_ident(name)} "
            "CHARACTER SET utf8mb4"
        )

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists."""
        self._execute(f"DROP DATABASE IF EXISTS {_quote_ident(name)}")

    def _create_user(self) -> None:
        """Create the ``realtime`` user for TCP and socket access, all privileges."""
        for host in ("127.0.0.1", "localhost"):
            account = f"'{self.user}'@'{host}'"
            self._execute(f"CREATE USER {account} IDENTIFIED BY %s", (self.password,))
            self._execute(f"GRANT ALL PRIVILEGES ON *.* TO {account}")

    def _execute(self, sql: str, args: tuple[str, ...] | None = None) -> None:
        """Run one statement as root over the unix socket."""
        conn = pymysql.connect(unix_socket=str(self.socket), user="root", password="")
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
        finally:
            conn.close()

    def _wait_until_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Poll until root can connect over TCP; raise with the log tail on failure."""
        deadline = time.monotonic() + self.timeout
        while True:
            if proc.poll() is not None:
                reason = f"mariadbd exited with code {proc.returncode}"
                break
            try:
                pymysql.connect(
                    host=self.host,
                    port=self.port,
                    user="root",
                    password="",
                    connect_timeout=1,
                    read_timeout=1,
                ).close()
                return
            except pymysql.err.OperationalError as exc:
                last_error = exc
            if time.monotonic() > deadline:
                reason = f"mariadbd not ready after {self.timeout}s ({last_error})"
                break
            time.sleep(_POLL_INTERVAL)
        raise RuntimeError(f"{reason}; tail of {self.error_log}:\n{_log_tail(self.error_log)}")


def start_mariadb(base_dir: pathlib.Path, timeout: float = 60) -> MariaDB:
    """Initialise a datadir under ``base_dir``, start mariadbd and create the
    ``realtime`` user; return the running server (call ``stop()`` when done)."""
    db = MariaDB(pathlib.Path(base_dir), timeout)
    db._initialise()
    db.start()
    try:
        db._create_user()
    except BaseException:
        db.stop()
        raise
    return db
