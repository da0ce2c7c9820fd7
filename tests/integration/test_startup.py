"""Start-up of `python -m web` and `python -m web.token` as real processes.

Bad configuration must stop the service at once with one line naming the key;
a good `--config` file must be honoured; the schema is migrated exactly once.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from protocol.tokens import InvalidToken, verify_token
from settings import load_settings
from storage import open_storage
from storage.schema import MIGRATIONS
from tests.helpers.server import REPO_ROOT, ServerProcess, free_port, inherited_environment

SECRET = "startup-test-secret-0123456789abcdef"
QUICK = 15.0  # seconds a refused start may take at most (it takes well under one)
START_TIMEOUT = 30.0


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any REALTIME_* variable, plus `extra`."""
    env = inherited_environment()
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


def run_module(module: str, cwd: Path, env: dict[str, str], *args: str, timeout: float = QUICK):
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"REALTIME_DATABASE_PATH": str(tmp_path / "db" / "realtime.sqlite3")}


def assert_refused_with_one_line(result: subprocess.CompletedProcess, *named: str) -> None:
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in named:
        assert text in lines[0], lines[0]


# ------------------------------------------------------------ refused starts


@pytest.mark.slow
@pytest.mark.parametrize(
    "env, named",
    [
        ({"REALTIME_SERVER_WS_PORT": "abc", "REALTIME_AUTH_SECRET": SECRET}, ["[server] ws_port", "abc"]),
        ({"REALTIME_SERVER_HTTP_PORT": "70000", "REALTIME_AUTH_SECRET": SECRET}, ["[server] http_port", "70000"]),
        ({"REALTIME_DATABASE_BACKEND": "oracle", "REALTIME_AUTH_SECRET": SECRET}, ["[database] backend", "oracle"]),
        ({}, ["[auth] secret", "REALTIME_AUTH_SECRET"]),
        ({"REALTIME_AUTH_SECRET": "x"}, ["[auth] secret is 1 bytes long", "at least 32", "REALTIME_AUTH_SECRET"]),
        (
            {"REALTIME_AUTH_SECRET": SECRET, "REALTIME_NOTIFY_SECRET": "s3cret"},
            ["[notify] secret is 6 bytes long", "at least 32", "REALTIME_NOTIFY_SECRET"],
        ),
    ],
    ids=["invalid port", "port out of range", "unknown backend", "missing secret", "short secret", "short notify"],
)
def test_bad_environment_is_refused_with_one_line(tmp_path, env, named):
    started = time.monotonic()
    result = run_module("web", tmp_path, clean_env(**sqlite_env(tmp_path), **env))
    assert_refused_with_one_line(result, *named)
    assert time.monotonic() - started < QUICK
    assert not (tmp_path / "db").exists()  # refused before touching the database


@pytest.mark.slow
def test_missing_config_file_is_refused_with_one_line(tmp_path):
    missing = tmp_path / "no-such-dir" / "realtime.ini"
    result = run_module("web", tmp_path, clean_env(REALTIME_AUTH_SECRET=SECRET), "--config", str(missing))
    assert_refused_with_one_line(result, str(missing))


@pytest.mark.slow
def test_unknown_key_in_config_file_is_refused_with_one_line(tmp_path):
    config = tmp_path / "realtime.ini"
    config.write_text("[server]\nwsport = 9000\n", encoding="utf-8")
    result = run_module("web", tmp_path, clean_env(REALTIME_AUTH_SECRET=SECRET), "--config", str(config))
    assert_refused_with_one_line(result, "[server] wsport")


@pytest.mark.slow
def test_an_environment_variable_that_names_no_setting_is_refused_with_one_line(tmp_path):
    env = clean_env(REALTIME_AUTH_SECRET=SECRET, REALTIME_SERVER_WSPORT="9000")
    result = run_module("web", tmp_path, env)
    assert_refused_with_one_line(result, "REALTIME_SERVER_WSPORT", "REALTIME_SERVER_WS_PORT")


@pytest.mark.slow
def test_malformed_config_file_is_refused_with_one_line(tmp_path):
    config = tmp_path / "realtime.ini"
    config.write_text("[server]\nws_port = 9000\nws_port = 9001\n", encoding="utf-8")
    result = run_module("web", tmp_path, clean_env(REALTIME_AUTH_SECRET=SECRET), "--config", str(config))
    assert_refused_with_one_line(result, "ws_port")


# ------------------------------------------------------------ ports already in use


def busy_port_env(tmp_path: Path, listener: socket.socket, which: str) -> dict[str, str]:
    busy = str(listener.getsockname()[1])
    return clean_env(
        **sqlite_env(tmp_path),
        REALTIME_AUTH_SECRET=SECRET,
        REALTIME_SERVER_WS_PORT=busy if which == "ws" else str(free_port()),
        REALTIME_SERVER_HTTP_PORT=busy if which == "http" else str(free_port()),
    )


@pytest.fixture
def listener():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


@pytest.mark.slow
def test_websocket_port_in_use_exits_non_zero(tmp_path, listener):
    result = run_module("web", tmp_path, busy_port_env(tmp_path, listener, "ws"))
    assert result.returncode != 0


@pytest.mark.slow
def test_http_port_in_use_exits_non_zero(tmp_path, listener):
    result = run_module("web", tmp_path, busy_port_env(tmp_path, listener, "http"), timeout=5)
    assert result.returncode != 0


# ------------------------------------------------------------ a good --config file


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_healthy(process: subprocess.Popen, http_port: int, log: Path) -> dict:
    """Poll /healthz until it answers 200; the pause between polls is a wait for the process to exit."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            status, body = get(f"http://127.0.0.1:{http_port}/healthz")
            if status == 200:
                return json.loads(body)
        except OSError:
            pass
        try:
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
    raise AssertionError(f"not healthy within {START_TIMEOUT} s:\n{log.read_text(errors='replace')}")


def start_and_stop(workdir: Path, config: Path, http_port: int, ws_port: int, log: Path) -> None:
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "web", "--config", str(config)],
            cwd=workdir,
            env=clean_env(),
            stdout=output,
            stderr=output,
        )
    try:
        health = wait_healthy(process, http_port, log)
        assert health["status"] == "ok"
        with socket.create_connection(("127.0.0.1", ws_port), timeout=5):
            pass  # the WebSocket port from the file is listening too
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_demo_mode_prints_the_demo_pages_url_at_start(tmp_path):
    server = ServerProcess(tmp_path, {"REALTIME_DATABASE_PATH": str(tmp_path / "db.sqlite3")})
    server.start("--demo")
    try:
        status, page = get(f"http://127.0.0.1:{server.ws_port}/")
        assert status == 200 and b"<html" in page.lower()
        assert f"demo page: http://127.0.0.1:{server.ws_port}/" in server.log_path.read_text().splitlines()
    finally:
        server.stop()


@pytest.mark.slow
def test_config_file_is_honoured_and_restart_does_not_migrate_again(tmp_path):
    ws_port, http_port = free_port(), free_port()
    database = tmp_path / "db" / "realtime.sqlite3"
    config = tmp_path / "elsewhere" / "realtime.ini"
    config.parent.mkdir()
    config.write_text(
        f"[server]\nhost = 127.0.0.1\nws_port = {ws_port}\nhttp_port = {http_port}\n"
        f"[database]\nbackend = sqlite\npath = {database}\n"
        f"[auth]\nsecret = {SECRET}\n",
        encoding="utf-8",
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "config.ini").write_text("[server]\nws_port = abc\n", encoding="utf-8")  # must not be read
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    start_and_stop(workdir, config, http_port, ws_port, first_log)
    assert database.is_file()
    start_and_stop(workdir, config, http_port, ws_port, second_log)

    assert "schema migrated" in first_log.read_text(errors="replace")
    assert "schema migrated" not in second_log.read_text(errors="replace")


# ------------------------------------------------------------ python -m web.token


@pytest.mark.slow
def test_web_token_prints_a_token_the_server_accepts(tmp_path):
    result = run_module("web.token", tmp_path, clean_env(REALTIME_AUTH_SECRET=SECRET), "42")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert len(token.splitlines()) == 1
    assert verify_token(SECRET, token) == 42


@pytest.mark.slow
def test_web_token_with_a_ttl(tmp_path):
    result = run_module("web.token", tmp_path, clean_env(REALTIME_AUTH_SECRET=SECRET), "7", "--ttl", "-60")
    assert result.returncode == 0, result.stderr
    with pytest.raises(InvalidToken):  # already expired
        verify_token(SECRET, result.stdout.strip())


@pytest.mark.slow
def test_web_token_without_a_secret_is_refused_with_one_line(tmp_path):
    result = run_module("web.token", tmp_path, clean_env(), "42")
    assert_refused_with_one_line(result, "REALTIME_AUTH_SECRET")
    assert result.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("user_id", ["0", "-5", "abc"])
def test_web_token_refuses_a_bad_user_id(tmp_path, user_id):
    result = run_module("web.token", tmp_path, clean_env(REALTIME_AUTH_SECRET=SECRET), "--", user_id)
    assert result.returncode != 0
    assert result.stdout == ""


# ------------------------------------------------------------ schema migration


def test_schema_is_migrated_once(tmp_path):
    empty_config = tmp_path / "empty.ini"
    empty_config.write_text("", encoding="utf-8")
    environ = {**sqlite_env(tmp_path), "REALTIME_AUTH_SECRET": SECRET}
    every_version = [version for version, _ in MIGRATIONS]
    assert every_version[0] == 1

    applied = []
    for _ in range(2):
        storage = open_storage(load_settings(empty_config, environ=environ).database)
        try:
            applied.append(storage.prepare())
            assert storage.schema_version() == every_version[-1]
        finally:
            storage.close()
    assert applied == [every_version, []]
