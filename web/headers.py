"""Request headers for pywsgi, parsed without the email package when they are plain.

pywsgi parses every request's headers with `http.client.parse_headers`,
which runs the whole `email` feed parser: a tenth of the CPU of accepting a
WebSocket. Headers that are all plain `Name: value` lines (every browser's
and client library's) are built directly into the same message class; any
other header block (continuation lines, malformed names) goes through the
standard parser, so the result never differs from pywsgi's own, except that a
block the connection cuts short is an error rather than a request.

A request's headers get a total byte budget (`MAX_HEADER_BYTES`, like
nginx's default): pywsgi alone accepts 100 lines of 64 KiB each, 6 MiB a
stalled request could hold. Beyond it `HeadersTooLarge` is raised, which
the handler answers with 431.
"""

from __future__ import annotations

import email.parser
import re
from http.client import HTTPException
from typing import BinaryIO

from gevent.pywsgi import OldMessage

MAX_HEADER_BYTES = 16 * 1024  # request line and header block together
MAX_HEADERS = 100  # http.client's limit
_PLAIN = re.compile(r"([!-9;-~]+):[ \t]*(.*?)\r?\n")  # a token name, then the value up to the line end


class HeadersTooLarge(HTTPException):
    """The header block is over its byte budget or has more than `MAX_HEADERS` lines (answer 431)."""


class HeadersCutShort(ConnectionError):
    """The connection ended before the blank line: the request is incomplete (pywsgi would serve it)."""


def read_headers(rfile: BinaryIO, budget: int = MAX_HEADER_BYTES) -> OldMessage:
    """The header block of a request, as pywsgi's `headers_factory` would return it.

    Reads at most `budget` bytes (plus one, to tell a block that ends right there from a longer one).
    Raises `HeadersTooLarge` beyond it, and `HeadersCutShort` if the stream ends before the blank line.
    """
    lines: list[bytes] = []
    while True:
        line = rfile.readline(budget + 1)
        budget -= len(line)
        if budget < 0:
            raise HeadersTooLarge("request headers too large")
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise HeadersTooLarge(f"got more than {MAX_HEADERS} headers")
        if not line.endswith(b"\n"):
            raise HeadersCutShort("the connection ended inside the request headers")
        if line in (b"\r\n", b"\n"):
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
