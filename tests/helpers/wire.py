"""The WebSocket wire byte by byte: `RawSocket`, a client on a plain TCP socket, and the client frames it writes.

Every byte it writes is the test's choice; it parses the server's frames itself, so close codes
and the end of the TCP connection are seen as they are on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import time
from typing import Any

from tests.helpers.server import ServerProcess

OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA
TIMEOUT = 10.0
HANDSHAKE_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def client_frame(opcode: int, payload: bytes | str, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One masked client frame (a random mask unless given)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    mask = os.urandom(4) if mask is None else mask
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes((first, 0x80 | size))
    elif size < 1 << 16:
        header = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def json_frame(frame: dict[str, Any]) -> bytes:
    return client_frame(OPCODE_TEXT, json.dumps(frame))


def connect_frame(server: ServerProcess, user_id: int) -> bytes:
    return json_frame({"type": "connect", "userId": user_id, "token": server.token(user_id)})


class RawSocket:
    """A WebSocket client on a plain TCP socket: every byte it writes is the test's choice."""

    def __init__(self, port: int, path: str = "/", receive_buffer: int | None = None):
        """`receive_buffer`: SO_RCVBUF, set before connecting so that the window it offers is that small too."""
        self.sock = socket.socket()
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.buffer = b""
        self.texts: list[dict[str, Any]] = []  # text frames read but not yet taken by expect()
        self.controls: list[tuple[int, bytes]] = []  # control frames read but not yet taken by read_control()
        self.eof = False

    # ------------------------------------------------------------ writing

    def handshake(self, after: bytes = b"") -> None:
        """Send the upgrade request and `after` in ONE write, then read the 101 response."""
        self.sock.sendall(self.request + after)
        deadline = time.monotonic() + TIMEOUT
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), head
        headers = {
            name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
        }
        expected = base64.b64encode(hashlib.sha1(self.key + HANDSHAKE_GUID).digest()).decode()
        assert headers.get("sec-websocket-accept") == expected, headers

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes | str, fin: bool = True) -> None:
        self.sock.sendall(client_frame(opcode, payload, fin))

    def send_json(self, frame: dict[str, Any]) -> None:
        self.sock.sendall(json_frame(frame))

    def connect(self, server: ServerProcess, user_id: int) -> dict[str, Any]:
        self.handshake()
        self.send(connect_frame(server, user_id))
        return self.expect("connected", userId=user_id)

    # ------------------------------------------------------------ reading

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no more bytes from the server in time; unread: {self.texts} {self.controls}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(
                f"no more bytes from the server in time; unread: {self.texts} {self.controls}"
            ) from None
        if not data:
            self.eof = True
            raise EOFError("the server closed the TCP connection")
        self.buffer += data

    def _take(self, count: int, deadline: float) -> bytes:
        while len(self.buffer) < count:
            self._fill(deadline)
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_frame(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        """The next frame from the server as (opcode, payload); server frames are unmasked and unfragmented here."""
        deadline = time.monotonic() + timeout
        first, second = self._take(2, deadline)
        assert first & 0x70 == 0, f"reserved bits set by the server: {first:#x}"
        assert first & 0x80, "the server fragments no frame"
        assert not second & 0x80, "server frames must not be masked"
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self._take(2, deadline), "big")
        elif length == 127:
            length = int.from_bytes(self._take(8, deadline), "big")
        return first & 0x0F, self._take(length, deadline)

    def _next(self, keep: list, take: Any, deadline: float) -> Any:
        """Read frames (sorting them into `texts` and `controls`) until `take(keep)` finds one."""
        while True:
            found = take(keep)
            if found is not None:
                return found
            opcode, payload = self.read_frame(max(0.0, deadline - time.monotonic()))
            if opcode == OPCODE_TEXT:
                self.texts.append(json.loads(payload))
            else:
                assert opcode in (OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG), f"unexpected opcode {opcode}"
                self.controls.append((opcode, payload))

    def read_control(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        """The next control frame; text frames read on the way are kept for expect()."""
        return self._next(self.controls, lambda kept: kept.pop(0) if kept else None, time.monotonic() + timeout)

    def expect_pong(self, payload: bytes, timeout: float = TIMEOUT) -> None:
        opcode, received = self.read_control(timeout)
        assert (opcode, received) == (OPCODE_PONG, payload)

    def expect_close(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """The server's close frame, read past any text frames: (code, reason)."""
        opcode, payload = self.read_control(timeout)
        assert opcode == OPCODE_CLOSE, (opcode, payload)
        assert len(payload) >= 2, payload
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8")

    def expect_eof(self, timeout: float) -> None:
        """The server closes TCP within `timeout`, sending nothing more."""
        deadline = time.monotonic() + timeout
        assert self.buffer == b"", f"bytes after the close frame: {self.buffer!r}"
        try:
            self._fill(deadline)
        except EOFError:
            return
        raise AssertionError(f"bytes after the close frame: {self.buffer!r}")

    def expect(self, frame_type: str, timeout: float = TIMEOUT, **fields: Any) -> dict[str, Any]:
        """The first text frame of this type (and fields); control frames read on the way are kept."""

        def take(texts: list[dict[str, Any]]) -> dict[str, Any] | None:
            for index, frame in enumerate(texts):
                if frame.get("type") == frame_type and all(frame.get(k) == v for k, v in fields.items()):
                    return texts.pop(index)
            return None

        return self._next(self.texts, take, time.monotonic() + timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

