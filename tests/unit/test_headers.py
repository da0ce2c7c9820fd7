"""web.headers must parse exactly like pywsgi's own header parsing (http.client + email)."""

from __future__ import annotations

import io
from http.client import HTTPException, parse_headers

import pytest
from gevent.pywsgi import OldMessage
from hypothesis import given, settings
from hypothesis import strategies as st

from web.headers import MAX_HEADER_BYTES, MAX_HEADERS, HeadersCutShort, HeadersTooLarge, read_headers

BLOCKS = [
    b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: a2V5a2V5a2V5a2V5a2V5aw==\r\n\r\n",
    b"Host:  x  \r\nX-Empty:\r\nX-Tab:\t tab\r\n\r\n",
    b"Host: x\r\n folded\r\n\r\n",
    b"Bad Name: x\r\nHost: y\r\n\r\n",
    b"Host: x\nLF: only\n\n",
    b"Host: \xe9\xff\r\n\r\n",
    b"\r\n",
    b"NoColon\r\nHost: x\r\n\r\n",
    b"Host: x\r\nHost: y\r\n\r\n",
    b"Host: a:b:c\r\n\r\nBODY",
    b"From nobody\r\nHost: x\r\n\r\n",
    b":empty-name\r\n\r\n",
]
CUT_SHORT = [b"", b"Host: x\r\n\r", b"Host: x\r\nUpgrade: websocket\r\n", b"Host: x\r\nUpgr"]


def standard(block: bytes) -> OldMessage:
    return parse_headers(io.BytesIO(block), _class=OldMessage)


def same(a: OldMessage, b: OldMessage) -> bool:
    return a.items() == b.items() and a.get_payload() == b.get_payload() and len(a.defects) == len(b.defects)


@pytest.mark.parametrize("block", BLOCKS, ids=repr)
def test_matches_the_standard_parser(block: bytes) -> None:
    assert same(read_headers(io.BytesIO(block)), standard(block))


@pytest.mark.parametrize("block", CUT_SHORT, ids=repr)
def test_a_block_the_connection_cuts_short_is_not_a_request(block: bytes) -> None:
    with pytest.raises(HeadersCutShort):
        read_headers(io.BytesIO(block))


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=40).map(lambda line: line.replace(b"\n", b"")), max_size=8))
def test_matches_the_standard_parser_on_arbitrary_lines(lines: list[bytes]) -> None:
    block = b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    assert same(read_headers(io.BytesIO(block)), standard(block))


def test_reads_no_further_than_the_blank_line() -> None:
    stream = io.BytesIO(b"Host: x\r\n\r\nframe bytes")
    read_headers(stream)
    assert stream.read() == b"frame bytes"


def block_of(size: int) -> bytes:
    """A header block of exactly `size` bytes, the blank line included."""
    return b"X: " + b"a" * (size - 7) + b"\r\n\r\n"


def test_a_block_within_the_budget_is_read_whole() -> None:
    stream = io.BytesIO(block_of(MAX_HEADER_BYTES) + b"next")
    assert read_headers(stream)["X"] == "a" * (MAX_HEADER_BYTES - 7)
    assert stream.read() == b"next"


@pytest.mark.parametrize("block", [block_of(MAX_HEADER_BYTES + 1), b"X: " + b"a" * 10 * MAX_HEADER_BYTES], ids=len)
def test_a_block_over_the_budget_is_refused_having_read_no_more_than_the_budget(block: bytes) -> None:
    stream = io.BytesIO(block)
    with pytest.raises(HeadersTooLarge):
        read_headers(stream)
    assert stream.tell() <= MAX_HEADER_BYTES + 1


def test_the_budget_is_what_the_request_line_left() -> None:
    with pytest.raises(HeadersTooLarge):
        read_headers(io.BytesIO(block_of(100)), budget=99)
    assert read_headers(io.BytesIO(block_of(100)), budget=100)["X"]


def test_too_many_headers_raise_like_http_client() -> None:
    block = b"".join(b"X-%d: v\r\n" % n for n in range(MAX_HEADERS + 1)) + b"\r\n"
    with pytest.raises(HeadersTooLarge):
        read_headers(io.BytesIO(block))
    with pytest.raises(HTTPException):
        standard(block)
