"""The conformance echo server (`python -m web.echo`, which scripts/autobahn.sh runs Autobahn against) works.

Autobahn|Testsuite needs Python 2.7, which CI may not have; this keeps the
echo endpoint itself from rotting when the WebSocket layer changes under it.
"""

from __future__ import annotations

import selectors
import subprocess
import sys
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from tests.helpers.server import REPO_ROOT
from tests.helpers.wire import (
    OPCODE_BINARY,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    TIMEOUT,
    RawSocket,
    client_frame,
)


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "web.echo", "--port", "0"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(TIMEOUT), "the echo server printed no URL in time"
        url = process.stdout.readline().decode()
        assert url.startswith("ws://127.0.0.1:"), (url, process.stderr.read1().decode())
        yield urlsplit(url).port
    finally:
        process.terminate()
        process.wait(TIMEOUT)


def test_text_comes_back_as_text_and_binary_as_binary(echo_port: int) -> None:
    with RawSocket(echo_port) as ws:
        ws.handshake()
        ws.send(client_frame(OPCODE_TEXT, "h\u00e9llo \U0001f600") + client_frame(OPCODE_BINARY, b"\x00\xff" * 40_000))
        assert ws.read_frame() == (OPCODE_TEXT, "h\u00e9llo \U0001f600".encode())
        assert ws.read_frame() == (OPCODE_BINARY, b"\x00\xff" * 40_000)


def test_a_fragmented_message_comes_back_whole_after_the_pong_for_a_ping_between_its_fragments(
    echo_port: int,
) -> None:
    with RawSocket(echo_port) as ws:
        ws.handshake()
        ws.send(
            client_frame(OPCODE_BINARY, b"one ", fin=False)
            + client_frame(OPCODE_PING, b"between")
            + client_frame(OPCODE_CONTINUATION, b"two")
        )
        assert ws.read_frame() == (OPCODE_PONG, b"between")
        assert ws.read_frame() == (OPCODE_BINARY, b"one two")
