"""The service under the real supervisord, with the repository's supervisord.conf.

The test runs a copy of the file (see tests/helpers/supervision.py) in which what
supervisord writes goes to the test's temporary directories, the program's
`command` and `directory` are still the repository's `.venv/bin/python -m web`,
and `environment=` gives the service the test's ports, database and secret.
Everything else is the file as it is.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers.server import REPO_ROOT, DatabaseFactory, ServerProcess
from tests.helpers.supervision import (
    START_TIMEOUT,
    Supervisor,
    exited,
    generate_config,
    read_config,
    refuses,
    wait_running,
)

pytestmark = pytest.mark.slow


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
    config = generate_config("supervisord.conf", data_dir, socket_dir / "s.sock", {"realtime": environment})
    parser = read_config(config)
    program = "program:realtime"
    assert parser.get(program, "command") == f"{REPO_ROOT}/.venv/bin/python -m web --config {REPO_ROOT}/config.ini"
    assert parser.get(program, "directory") == str(REPO_ROOT)
    assert parser.get("supervisorctl", "serverurl") == f"unix://{socket_dir / 's.sock'}"
    supervisor = Supervisor(config, data_dir)
    try:
        yield supervisor, service
    finally:
        try:
            supervisor.clean_up()
        finally:
            service.close_storage()
            shutil.rmtree(socket_dir, ignore_errors=True)


def wait_healthy(supervisor: Supervisor, service: ServerProcess) -> None:
    try:
        service.wait_health(lambda status, _: status == 200, "healthy", START_TIMEOUT)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{supervisor.log_tail()}") from None


def test_supervisord_runs_restarts_and_shuts_down_the_service(supervisor: tuple[Supervisor, ServerProcess]) -> None:
    control, service = supervisor
    control.start()
    wait_healthy(control, service)
    wait_running(control, "realtime")
    first_pid = control.program_pid("realtime")
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
    assert control.program_pid("realtime") != first_pid
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

    supervisord_pid, program_pid = control.pid, control.program_pid("realtime")
    assert "Shut down" in control.ctl("shutdown")
    assert supervisord_pid is not None and exited(supervisord_pid, 30), "supervisord is still running"
    assert exited(program_pid, 5), "the service outlived supervisord"
    assert refuses(service.ws_port) and refuses(service.http_port)
