"""The real service, started as `python -m web` in a child process for integration tests."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pymysql

from protocol.tokens import mint_token
from settings import load_settings
from storage import Storage, open_storage
from tests.helpers.client import Client
from tests.helpers.mariadb import MariaDB

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "integration-test-secret-0123456789abcdef"
START_TIMEOUT = 30.0
# The databases the integration tests run on (`REALTIME_TEST_BACKENDS`, default both): "sqlite", "mysql".
BACKENDS = [
    name.strip() for name in os.environ.get("REALTIME_TEST_BACKENDS", "sqlite,mysql").split(",") if name.strip()
]
# The send limits ([limits], per user and per socket) of a server whose clients are scripts, not people: bulk
# senders, traffic generators, fuzzers. The defaults stop such clients on purpose; these tests measure something else.
SCRIPTED_CLIENT_LIMITS = {
    "REALTIME_LIMITS_FRAMES_PER_SECOND": "100000",
    "REALTIME_LIMITS_FRAME_BURST": "100000",
    "REALTIME_LIMITS_MESSAGES_PER_SECOND": "100000",
    "REALTIME_LIMITS_MESSAGE_BURST": "100000",
    "REALTIME_LIMITS_CONTENT_BYTES_PER_SECOND": "1000000000",
    "REALTIME_LIMITS_CONTENT_BYTES_BURST": "1000000000",
    "REALTIME_LIMITS_SOCKET_FRAMES_PER_SECOND": "100000",
    "REALTIME_LIMITS_SOCKET_FRAME_BURST": "100000",
}
_user_ids = itertools.count(10_000)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def new_user_ids(count: int) -> list[int]:
    """User ids no other test in this session uses."""
    return [next(_user_ids) for _ in range(count)]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll an HTTP endpoint or a port until `condition()` holds (there is no event to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not so within {timeout} s"
        time.sleep(0.05)


def inherited_environment() -> dict[str, str]:
    """This process's environment for a service started from it, without its `REALTIME_*` variables: the service
    refuses any that names no setting (`REALTIME_TEST_BACKENDS`), and those that do are the caller's to give."""
    return {key: value for key, value in os.environ.items() if not key.startswith("REALTIME_")}


class ServerProcess:
    """One service process with its own ports, working directory and database."""

    def __init__(self, workdir: Path, database_env: dict[str, str], extra_env: dict[str, str] | None = None):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.ws_port = free_port()
        self.http_port = free_port()
        self.env = {
            **inherited_environment(),
            "PYTHONPATH": str(REPO_ROOT),
            "REALTIME_SERVER_HOST": "127.0.0.1",
            "REALTIME_SERVER_WS_PORT": str(self.ws_port),
            "REALTIME_SERVER_HTTP_PORT": str(self.http_port),
            "REALTIME_AUTH_SECRET": SECRET,
            **database_env,
            **(extra_env or {}),
        }
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._storage: Storage | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # ------------------------------------------------------------ process

    def start(self, *args: str) -> ServerProcess:
        """Start `python -m web` and wait until /healthz answers 200."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "web", *args], cwd=self.workdir, env=self.env, stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.get("/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)  # polling for readiness, not waiting for an event
        raise RuntimeError(f"server not healthy within {START_TIMEOUT} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, then wait; return the exit code."""
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        """SIGKILL: no chance to clean up, as in a crash."""
        return self._signal(signal.SIGKILL, 10)

    def _signal(self, signum: int, timeout: float) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"server did not exit within {timeout} s after {signum}:\n{self.log_tail()}"
            ) from None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # ------------------------------------------------------------ database

    @property
    def storage(self) -> Storage:
        """The server's database, opened from this test process (for seeding and checking)."""
        if self._storage is None:
            environ = {k: v for k, v in self.env.items() if k.startswith("REALTIME_DATABASE_")}
            settings = load_settings(environ={**environ, "REALTIME_AUTH_SECRET": SECRET})
            if settings.database.backend == "sqlite" and not Path(settings.database.path).is_absolute():
                raise ValueError("give the SQLite database an absolute path")
            self._storage = open_storage(settings.database)
        return self._storage

    def add_users(self, count: int) -> list[int]:
        """Create `count` new platform users and return their ids."""
        ids = new_user_ids(count)
        self.storage.add_users([(user_id, f"user{user_id}") for user_id in ids])
        return ids

    def block(self, blocker: int, blocked: int) -> None:
        """`blocker` blocks `blocked`, as the platform would: a row in its `blocks` table."""
        self.storage.add_blocks([(blocker, blocked)])

    def unblock(self, blocker: int, blocked: int) -> None:
        self.storage.remove_blocks([(blocker, blocked)])

    def close_storage(self) -> None:
        if self._storage is not None:
            self._storage.close()
            self._storage = None

    def mysql_connection(self, **options: Any) -> pymysql.connections.Connection:
        """A connection of the test's own to the server's MariaDB database."""
        return pymysql.connect(
            host=self.env["REALTIME_DATABASE_HOST"],
            port=int(self.env["REALTIME_DATABASE_PORT"]),
            user=self.env["REALTIME_DATABASE_USER"],
            password=self.env["REALTIME_DATABASE_PASSWORD"],
            database=self.env["REALTIME_DATABASE_NAME"],
            **options,
        )

    # ------------------------------------------------------------ clients

    def token(self, user_id: int, ttl: float = 3600) -> str:
        return mint_token(SECRET, user_id, ttl)

    def client(self, path: str = "/", **options: Any) -> Client:
        return Client(f"ws://127.0.0.1:{self.ws_port}{path}", **options)

    def connect(self, user_id: int) -> Client:
        """A socket authenticated as `user_id`, its `connected` frame at `client.connected`."""
        client = self.client()
        client.connected = client.connect(user_id, self.token(user_id))
        return client

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def health(self) -> tuple[int, dict[str, Any]] | None:
        """(status, body) of /healthz, or None while nothing listens."""
        try:
            status, body = self.get("/healthz")
        except OSError:
            return None
        return status, json.loads(body)

    def wait_health(
        self, condition: Callable[[int, dict[str, Any]], bool], what: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll /healthz until `condition(status, body)` holds; answer that body."""
        deadline = time.monotonic() + timeout
        while (answer := self.health()) is None or not condition(*answer):
            assert time.monotonic() < deadline, f"{what}: not so within {timeout} s; /healthz answered {answer}"
            time.sleep(0.05)  # polling an HTTP endpoint: there is no event to wait on
        return answer[1]


ServerFactory = Callable[..., ServerProcess]  # the `make_server` fixture
DatabaseFactory = Callable[[str], dict[str, str]]  # the `new_database` fixture


def mysql_database(server: MariaDB, name: str) -> dict[str, str]:
    """Create database `name` on `server`; its REALTIME_DATABASE_* environment."""
    server.create_database(name)
    return {
        "REALTIME_DATABASE_BACKEND": "mysql",
        "REALTIME_DATABASE_HOST": server.host,
        "REALTIME_DATABASE_PORT": str(server.port),
        "REALTIME_DATABASE_USER": server.user,
        "REALTIME_DATABASE_PASSWORD": server.password,
        "REALTIME_DATABASE_NAME": name,
    }
