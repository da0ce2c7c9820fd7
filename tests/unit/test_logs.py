"""Log lines: plain for people, JSON objects for collectors ([log] format); UTC times to the millisecond."""

from __future__ import annotations

import json
import logging
import re

import pytest

from settings import load_settings
from web.logs import configure_logging, log_configuration, utc_milliseconds

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
AUTH_SECRET = "auth-secret-" + "a" * 32
NOTIFY_SECRET = "notify-secret-" + "n" * 32


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in ("pykka", "geventwebsocket.handler")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in quiet.items():
        logging.getLogger(name).setLevel(saved)


@pytest.fixture
def effective_configuration(tmp_path):
    """What the service logs at start-up: a configuration with every kind of secret set, masked."""
    environ = {
        "REALTIME_AUTH_SECRET": AUTH_SECRET,
        "REALTIME_NOTIFY_SECRET": NOTIFY_SECRET,
        "REALTIME_DATABASE_PASSWORD": "db-password",
        "REALTIME_CLUSTER_REDIS_URL": "redis://node:redis-password@redis.example:6379/0",
        "REALTIME_DATABASE_PATH": str(tmp_path / "realtime.sqlite3"),
    }
    return load_settings(None, environ).redacted()


def assert_no_secret(text: str) -> None:
    for secret in (AUTH_SECRET, NOTIFY_SECRET, "db-password", "redis-password"):
        assert secret not in text


def test_times_are_utc_to_the_millisecond() -> None:
    record = logging.makeLogRecord({"created": 1_796_312_910.1239, "msecs": 123.9})
    assert utc_milliseconds(record) == "2026-12-03T15:48:30.123Z"


def test_json_lines_carry_time_level_logger_message_and_context(capsys, restore_logging):
    configure_logging("info", "json")
    log = logging.getLogger("realtime.test")
    log.info("user %s connected", 7, extra={"socket": 12})
    log.debug("not shown at info")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("handler failed")
    lines = capsys.readouterr().err.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["message"] for r in records] == ["user 7 connected", "handler failed"]
    first = records[0]
    assert first["level"] == "INFO" and first["logger"] == "realtime.test" and first["socket"] == 12
    assert re.fullmatch(TIME, first["time"]), first["time"]
    assert "RuntimeError: boom" in records[1]["exc_info"]


def test_plain_lines_are_time_level_logger_and_message(capsys, restore_logging):
    configure_logging("debug", "plain")
    logging.getLogger("realtime.test").debug("shown at debug")
    line = capsys.readouterr().err.strip()
    assert re.fullmatch(rf"{TIME} DEBUG realtime\.test: shown at debug", line), line


def test_json_start_up_record_holds_the_configuration_as_an_object_with_secrets_masked(
    capsys, restore_logging, effective_configuration
):
    configure_logging("info", "json")
    log_configuration(effective_configuration)
    text = capsys.readouterr().err
    assert_no_secret(text)
    (record,) = [json.loads(line) for line in text.strip().splitlines()]
    assert record["message"] == "effective configuration" and record["level"] == "INFO"
    config = record["config"]
    assert config["server"]["ws_port"] == 8080 and config["limits"]["frame_burst"] == 500
    assert config["auth"]["secret"] == config["notify"]["secret"] == config["database"]["password"] == "***"
    assert config["cluster"]["redis_url"] == "redis://node:***@redis.example:6379/0"


def test_plain_start_up_record_is_one_readable_line_with_secrets_masked(
    capsys, restore_logging, effective_configuration
):
    configure_logging("info", "plain")
    log_configuration(effective_configuration)
    text = capsys.readouterr().err
    assert_no_secret(text)
    (line,) = text.strip().splitlines()
    assert re.fullmatch(rf"{TIME} INFO web: effective configuration \[server\] host=127\.0\.0\.1 ws_port=8080 .*", line)
    assert " [auth] secret=*** timeout=10.0 " in line and " [log] level=info format=plain" in line


def test_debug_shows_no_actor_registration_but_keeps_pykka_warnings(capsys, restore_logging):
    configure_logging("debug", "json")
    pykka = logging.getLogger("pykka._registry")
    pykka.debug("Registered UserActor (urn:uuid:1)")
    pykka.warning("Unexpected message received")
    logging.getLogger("actors.user").debug("user 7 connected")
    messages = [json.loads(line)["message"] for line in capsys.readouterr().err.strip().splitlines()]
    assert messages == ["Unexpected message received", "user 7 connected"]


def test_a_quieted_logger_still_honours_a_higher_level(capsys, restore_logging):
    configure_logging("error", "plain")
    logging.getLogger("pykka").warning("below the configured level")
    logging.getLogger("geventwebsocket.handler").warning("below the configured level")
    assert capsys.readouterr().err == ""
