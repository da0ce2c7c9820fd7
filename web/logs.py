"""Logging set-up: one line per event, plain text for people or JSON lines for log collectors (`[log] format`).

Every line starts with its UTC time to the millisecond (`2026-12-03T15:48:30.123Z`), so lines from several
nodes sort together and a frame's round trip can be read off them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Mapping

from pythonjsonlogger.json import JsonFormatter

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
CONFIG_FIELD = "config"  # the start-up record's effective configuration: an object in JSON, key=value pairs in plain
# Loggers too chatty below a level: geventwebsocket logs one line per request, pykka one per actor started,
# stopped, registered and unregistered (thousands a minute under load) at debug; their warnings and errors stay.
QUIET_BELOW = {"geventwebsocket.handler": logging.WARNING, "pykka": logging.INFO}


def utc_milliseconds(record: logging.LogRecord) -> str:
    """`record`'s time as ISO 8601 UTC with milliseconds and a Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class UtcMilliseconds(logging.Formatter):
    """A formatter whose times are `utc_milliseconds`, whatever its format."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return utc_milliseconds(record)


class PlainFormatter(UtcMilliseconds):
    """`time LEVEL logger: message`, with the start-up configuration as `[section] key=value ...` on the same line."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        config = getattr(record, CONFIG_FIELD, None)
        return f"{line} {_pairs(config)}" if isinstance(config, Mapping) else line


class JsonLinesFormatter(JsonFormatter, UtcMilliseconds):
    """One JSON object per line: `time`, `level`, `logger`, `message`, any `extra` fields, `exc_info` for errors."""

    def __init__(self) -> None:
        super().__init__(JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


def _pairs(config: Mapping[str, Mapping[str, Any]]) -> str:
    return " ".join(
        f"[{section}] " + " ".join(f"{key}={value}" for key, value in keys.items()) for section, keys in config.items()
    )


def configure_logging(level: str, format_name: str) -> None:
    """Send every record of `level` and above to stderr (supervisord's log file) in `format_name`."""
    threshold = logging.getLevelName(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter() if format_name == "json" else PlainFormatter(PLAIN_FORMAT))
    handler.setLevel(threshold)  # also for loggers given a level of their own below
    logging.basicConfig(level=threshold, handlers=[handler], force=True)
    for name, quiet_below in QUIET_BELOW.items():
        logging.getLogger(name).setLevel(max(quiet_below, threshold))


def log_configuration(config: Mapping[str, Mapping[str, Any]]) -> None:
    """Log the effective configuration (secrets already masked) once at start-up, as a structured field."""
    logging.getLogger("web").info("effective configuration", extra={CONFIG_FIELD: config})
