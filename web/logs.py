"""Logging set-up: one line per event, plain text for people or JSON lines for log collectors (`[log] format`)."""

from __future__ import annotations

import logging
import sys
import time

from pythonjsonlogger.json import JsonFormatter

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str, format_name: str) -> None:
    """Send every record of `level` and above to stderr (supervisord's log file) in `format_name`."""
    handler = logging.StreamHandler(sys.stderr)
    if format_name == "json":
        formatter: logging.Formatter = JsonFormatter(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
    else:
        formatter = logging.Formatter(PLAIN_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime  # UTC, like every time in the contract
    handler.setFormatter(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("geventwebsocket.handler").setLevel(logging.WARNING)  # one line per request is noise
