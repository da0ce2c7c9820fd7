"""Throwaway redis-server for integration tests.

Usage::

    server = RedisServer(tmp_path)
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        ...
        server.stop()   # an outage: SIGTERM, as an operator would
        server.start()  # back on the same port, empty, as after a restart
    finally:
        server.stop()

The server runs on a free loopback port in a private directory, with no
config file and no persistence (no RDB snapshots, no AOF), so it never
touches a system-wide Redis and a restart starts empty. Install the binary
with ``scripts/install-system-deps.sh redis``.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import time

import redis

from tests.helpers.mariadb import _log_tail
from tests.helpers.server import free_port

_BIN_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin")
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.02


def _find_redis_server() -> str:
    found = shutil.which("redis-server", path=os.pathsep.join([os.environ.get("PATH", ""), *_BIN_DIRS]))
    if found is None:
        raise RuntimeError("redis-server not found; run scripts/install-system-deps.sh redis")
    return found


class RedisServer:
    """One redis-server process; `start()` after `stop()` or `kill()` brings it back on the same port."""

    host = "127.0.0.1"

    def __init__(self, base_dir: pathlib.Path) -> None:
        self.base_dir = pathlib.Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = self.base_dir / "redis.log"
        self.port = free_port()
        self._binary = _find_redis_server()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client of the test's own (close it when done)."""
        return redis.Redis(host=self.host, port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def start(self) -> None:
        """Start redis-server on this port and wait until it answers PING."""
        if self._proc is not None and self._proc.poll() is None:
            return
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    self._binary,
                    "--port", str(self.port),
                    "--bind", self.host,
                    "--dir", str(self.base_dir),
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        try:
            self._wait_until_ready(self._proc)
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """SIGTERM and wait for the exit (SIGKILL if it takes too long)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything cleanly."""
        self._end(signal.SIGKILL)

    def _end(self, signum: int) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signum)
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _wait_until_ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Poll PING until it answers; raise with the log tail if the process exits or the deadline passes."""
        deadline = time.monotonic() + _START_TIMEOUT
        client = self.client()
        try:
            while True:
                if proc.poll() is not None:
                    reason = f"redis-server exited with code {proc.returncode}"
                    break
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError) as error:
                    last_error = error
                if time.monotonic() > deadline:
                    reason = f"redis-server not answering PING after {_START_TIMEOUT}s ({last_error})"
                    break
                time.sleep(_POLL_INTERVAL)  # polling for readiness, not waiting for an event
        finally:
            client.close()
        raise RuntimeError(f"{reason}; tail of {self.log_file}:\n{_log_tail(self.log_file)}")
