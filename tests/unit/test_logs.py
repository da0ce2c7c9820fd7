"""Log lines: plain for people, JSON objects for collectors ([log] format)."""

from __future__ import annotations

import json
import logging
import re

import pytest

from web.logs import configure_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", first["time"])
    assert "RuntimeError: boom" in records[1]["exc_info"]


def test_plain_lines_are_time_level_logger_and_message(capsys, restore_logging):
    configure_logging("debug", "plain")
    logging.getLogger("realtime.test").debug("shown at debug")
    line = capsys.readouterr().err.strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d DEBUG realtime\.test: shown at debug", line), line
