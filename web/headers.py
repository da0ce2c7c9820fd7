"""Request headers for pywsgi, parsed without the email package when they are plain.

pywsgi parses every request's headers with `http.client.parse_headers`,
which runs the whole `email` feed parser: a tenth of the CPU of accepting a
WebSocket. Headers that are all plain `Name: value` lines (every browser's
and client library's) are built directly into the same message class; any
other header block (continuation lines, malformed names) goes through the
standard parser, so the result never differs from pywsgi's own.
"""

from __future__ import annotations

import email.parser
import re
from http.client import HTTPException
from typing import BinaryIO

from gevent.pywsgi import OldMessage

MAX_LINE = 65536  # http.client's limits
MAX_HEADERS = 100
_PLAIN = re.compile(r"([!-9;-~]+):[ \t]*(.*?)\r?\n")  # a token name, then the value up to the line end


def read_headers(rfile: BinaryIO) -> OldMessage:
    """The header block of a request, as pywsgi's `headers_factory` would return it."""
    lines: list[bytes] = []
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            message = OldMessage()
            message.status = "Line too long"
            return message
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            break
    text = b"".join(lines).decode("iso-8859-1")
    message = OldMessage()
    for line in text.splitlines(keepends=True)[:-1]:
        plain = _PLAIN.fullmatch(line)
        if plain is None:
            return email.parser.Parser(_class=OldMessage).parsestr(text)
        message[plain[1]] = plain[2]
    message.set_payload("")  # what the parser leaves after the blank line
    return message
