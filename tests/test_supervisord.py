"""The service under the real supervisord, with the repository's supervisord.conf.

The test runs a copy of the file in which what supervisord writes (its log, pid
file, child logs, control socket and the service's own log) goes to the test's
temporary directories, the program's `command` and `directory` are still the
repository's `.venv/bin/python -m web`, and `environment=` gives the service
the test's ports, database and secret. Everything else is the file as it is.
"""

from __future__ import annotations

import configparser
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import DatabaseFactory
from tests.server import REPO_ROOT, ServerProcess

pytestmark = pytest.mark.slow

SUPERVISORD = REPO_ROOT / ".venv" / "bin" / "supervisord"
SUPERVISORCTL = REPO_ROOT / ".venv" / "bin" / "supervisorctl"
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0  # supervisorctl restart waits for the drain (stopwaitsecs) and startsecs


def generate_config(data_dir: Path, socket_path: Path, environment: dict[str, str]) -> Path:
    """The repository's supervisord.conf with its data paths moved and the test's environment added."""
    here = "%(here)s"
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # keep option names as written
    parser.read(REPO_ROOT / "supervisord.conf", encoding="utf-8")
    for section in parser.sections():
        for option, value in parser.items(section):
            value = value.replace(f"{here}/data/supervisor.sock", str(socket_path))
            value = value.replace(f"{here}/data", str(data_dir))
            parser.set(section, option, value.replace(here, str(REPO_ROOT)))
    program = "program:realtime"
    assert parser.get(program, "command") == f"{REPO_ROOT}/.venv/bin/python -m web --config {REPO_ROOT}/config.ini"
    assert parser.get(program, "directory") == str(REPO_ROOT)
    assert parser.get("supervisorctl", "serverurl") == f"unix://{socket_path}"
    extra = ",".join(f'{key}="{value}"' for key, value in environment.items())
    parser.set(program, "environment", f"{parser.get(program, 'environment')},{extra}")
    path = data_dir / "supervisord.conf"
    with path.open("w", encoding="utf-8") as handle:
        parser.write(handle)
    text = path.read_text(encoding="utf-8")
    assert f"{REPO_ROOT}/data" not in text, "a data path still points into the repository"
    return path


def exited(pid: int, timeout: float) -> bool:
    """Wait until process `pid` (not necessarily a child of ours) has exited."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([handle], [], [], timeout)  # a pidfd is readable once the process exits
        return bool(readable)
    finally:
        os.close(handle)


class Supervisor:
    def __init__(self, config: Path, data_dir: Path):
        self.config = config
        self.data_dir = data_dir
        # supervisord gets no REALTIME_* variables of its own: the program's come from environment=
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("REALTIME_")}
        self.program_pids: list[int] = []

    def start(self) -> None:
        started = subprocess.run(
            [str(SUPERVISORD), "-c", str(self.config)], env=self.env, capture_output=True, text=True, timeout=30
        )
        assert started.returncode == 0, started

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            [str(SUPERVISORCTL), "-c", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr, self.log_tail())
        return done.stdout

    @property
    def pid(self) -> int | None:
        try:
            return int((self.data_dir / "supervisord.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def program_pid(self) -> int:
        pid = int(self.ctl("pid", "realtime").strip())
        assert pid > 0
        self.program_pids.append(pid)
        return pid

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("supervisord.log", "realtime.log"):
            path = self.data_dir / name
            if path.exists():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    def clean_up(self) -> None:
        """Leave nothing running, whatever state the test left it in."""
        pid = self.pid
        if pid is not None and not exited(pid, 0):
            asked = subprocess.run(
                [str(SUPERVISORCTL), "-c", str(self.config), "pid", "realtime"],
                env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
            )  # fmt: skip
            if asked.stdout.strip().isdigit() and int(asked.stdout) > 0:
                self.program_pids.append(int(asked.stdout))
            subprocess.run(
                [str(SUPERVISORCTL), "-c", str(self.config), "shutdown"],
                env=self.env, capture_output=True, timeout=COMMAND_TIMEOUT,
            )  # fmt: skip
            if not exited(pid, 30):
                os.kill(pid, signal.SIGKILL)
        for program in self.program_pids:
            if not exited(program, 0):
                os.kill(program, signal.SIGKILL)


@pytest.fixture
def supervisor(
    backend: str, new_database: DatabaseFactory, tmp_path: Path
) -> Iterator[tuple[Supervisor, ServerProcess]]:
    """supervisord running the service; a `ServerProcess` (never started itself) knows its ports and database."""
    service = ServerProcess(tmp_path / "client", new_database(backend))  # ports, secret, database, clients
    environment = {key: value for key, value in service.env.items() if key.startswith("REALTIME_")}
    environment.pop("REALTIME_TEST_BACKENDS", None)
    socket_dir = Path(tempfile.mkdtemp(prefix="sv-"))  # unix socket paths are limited to about 100 bytes
    data_dir = tmp_path / "supervisor"
    data_dir.mkdir()
    supervisor = Supervisor(generate_config(data_dir, socket_dir / "s.sock", environment), data_dir)
    try:
        yield supervisor, service
    finally:
        try:
            supervisor.clean_up()
        finally:
            service.close_storage()
            shutil.rmtree(socket_dir, ignore_errors=True)


def wait_healthy(supervisor: Supervisor, service: ServerProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if service.get("/healthz")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"not healthy within {START_TIMEOUT} s:\n{supervisor.log_tail()}"
        time.sleep(0.1)  # polling for readiness: there is no event to wait on


def wait_running(supervisor: Supervisor) -> None:
    """Until supervisord reports the program RUNNING (after `startsecs` of staying up)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        status = supervisor.ctl("status", "realtime")
        if "RUNNING" in status:
            return
        assert "STARTING" in status, f"{status}\n{supervisor.log_tail()}"
        assert time.monotonic() < deadline, f"not RUNNING within {START_TIMEOUT} s: {status}\n{supervisor.log_tail()}"
        time.sleep(0.2)  # polling supervisorctl: there is no event to wait on


def refuses(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_supervisord_runs_restarts_and_shuts_down_the_service(supervisor: tuple[Supervisor, ServerProcess]) -> None:
    control, service = supervisor
    control.start()
    wait_healthy(control, service)
    wait_running(control)
    first_pid = control.program_pid()
    alice_id, bob_id = service.add_users(2)

    alice, bob = service.connect(alice_id), service.connect(bob_id)
    alice.message(bob_id, "before the restart", "sv-1")
    before = alice.expect("message_sent", clientMsgId="sv-1")
    assert bob.expect("message", messageId=before["messageId"])["content"] == "before the restart"

    output = control.ctl("restart", "realtime")
    assert "realtime: stopped" in output and "realtime: started" in output, output
    assert alice.expect_close() == 1001
    assert bob.expect_close() == 1001
    assert exited(first_pid, 10), "the old process is still running"
    assert control.program_pid() != first_pid
    assert "RUNNING" in control.ctl("status", "realtime")
    wait_healthy(control, service)

    with service.connect(alice_id) as alice, service.connect(bob_id) as bob:
        alice.message(bob_id, "after the restart", "sv-2")
        after = alice.expect("message_sent", clientMsgId="sv-2")
        assert bob.expect("message", messageId=after["messageId"])["content"] == "after the restart"
        alice.send({"type": "history", "with": bob_id})
        history = alice.expect("history")["messages"]
        assert [(m["messageId"], m["content"]) for m in history] == [
            (before["messageId"], "before the restart"),
            (after["messageId"], "after the restart"),
        ]

    log = (control.data_dir / "realtime.log").read_text(errors="replace")
    assert "effective configuration" in log, "the service's output does not reach its log in the data directory"
    assert service.env["REALTIME_AUTH_SECRET"] not in log

    supervisord_pid, program_pid = control.pid, control.program_pid()
    assert "Shut down" in control.ctl("shutdown")
    assert supervisord_pid is not None and exited(supervisord_pid, 30), "supervisord is still running"
    assert exited(program_pid, 5), "the service outlived supervisord"
    assert refuses(service.ws_port) and refuses(service.http_port)
