"""gevent-websocket, with the fixes and limits this service needs.

`ServiceWebSocketHandler` performs the handshake itself so that it builds a
`ServiceWebSocket`, which differs from gevent-websocket's `WebSocket` in:

- a limit on message size, checked from the frame header before any payload
  is read (`MessageTooLarge`, answered with close 1009);
- close frames that carry their status code (the library drops it);
- UTF-8 validation and unmasking done in C rather than byte by byte;
- one lock around writes, so a pong sent by the reading greenlet never
  interleaves with a frame sent by the socket's writer.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct

import gevent
from gevent.lock import Semaphore
from geventwebsocket.exceptions import ProtocolError, WebSocketError
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.websocket import Header, Stream, WebSocket

HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_GRACE_SECONDS = 2.0
MAX_CLOSE_REASON_BYTES = 123
READ_BUFFER_BYTES = 1024


class MessageTooLarge(WebSocketError):
    """The peer announced a message over the size limit; its payload was not read."""


class ServiceWebSocket(WebSocket):
    __slots__ = ("max_message_bytes", "_write_lock")

    def __init__(self, environ: dict, stream: Stream, handler: WebSocketHandler, max_message_bytes: int):
        super().__init__(environ, stream, handler)
        self.max_message_bytes = max_message_bytes
        self._write_lock = Semaphore()

    def receive(self) -> str | bytes | None:
        """The next message: `str` for text, `bytes` for binary, None once the connection is closed.

        Raises `MessageTooLarge`; the caller closes with 1009 and reads no further.
        """
        if self.closed:
            return None
        try:
            return self.read_message()
        except MessageTooLarge:
            raise
        except UnicodeDecodeError:
            self.close(1007, "invalid UTF-8")
        except ProtocolError:
            self.close(1002, "protocol error")
        except (WebSocketError, OSError):
            self.closed = True
        return None

    def read_message(self) -> str | bytes | None:
        opcode = None
        parts: list[bytes] = []
        size = 0
        while True:
            header = Header.decode_header(self.stream)
            if header.flags:
                raise ProtocolError("reserved bits set")
            if header.opcode > 0x7:  # control frames may arrive between fragments
                payload = self._read_payload(header)
                if header.opcode == self.OPCODE_CLOSE:
                    self.handle_close(header, payload)
                    return None
                if header.opcode == self.OPCODE_PING:
                    self.handle_ping(header, payload)
                elif header.opcode != self.OPCODE_PONG:
                    raise ProtocolError(f"unknown opcode {header.opcode}")
                continue
            if header.opcode in (self.OPCODE_TEXT, self.OPCODE_BINARY):
                if opcode is not None:
                    raise ProtocolError("new message inside a fragmented one")
                opcode = header.opcode
            elif header.opcode != self.OPCODE_CONTINUATION or opcode is None:
                raise ProtocolError(f"unexpected opcode {header.opcode}")
            size += header.length
            if size > self.max_message_bytes:
                raise MessageTooLarge(f"message of at least {size} bytes")
            parts.append(self._read_payload(header))
            if header.fin:
                break
        data = b"".join(parts)
        return data.decode("utf-8") if opcode == self.OPCODE_TEXT else data

    def _read_payload(self, header: Header) -> bytes:
        payload = self.raw_read(header.length) if header.length else b""
        if len(payload) != header.length:
            raise WebSocketError("unexpected end of stream in a frame")
        return _unmask(payload, header.mask) if header.mask else payload

    def send_frame(self, message: str | bytes, opcode: int) -> None:
        with self._write_lock:
            super().send_frame(message, opcode)

    def close(self, code: int = 1000, message: str | bytes = b"") -> None:
        """Send a close frame with `code` and `message`; then the peer is expected to close."""
        if self.closed:
            return
        reason = message.encode("utf-8") if isinstance(message, str) else bytes(message or b"")
        try:
            self.send_frame(struct.pack("!H", code) + reason[:MAX_CLOSE_REASON_BYTES], self.OPCODE_CLOSE)
        except (WebSocketError, OSError):
            pass
        finally:
            self.closed = True
        # a peer that never answers the close must not hold the connection open
        gevent.spawn_later(CLOSE_GRACE_SECONDS, _shutdown, self.handler.socket)


def _unmask(payload: bytes, mask: bytes) -> bytes:
    length = len(payload)
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class ServiceWebSocketHandler(WebSocketHandler):
    """gevent-websocket's handler with this service's WebSocket class and size limit.

    The server sets `max_message_bytes` on itself (see `web.service`).
    """

    def __init__(self, sock: socket.socket, address: tuple, server: object, rfile: object = None):
        # pywsgi's reader buffers 8 KiB per connection for its whole life; chat frames are small
        if rfile is None:
            rfile = sock.makefile("rb", READ_BUFFER_BYTES)
        super().__init__(sock, address, server, rfile)

    def upgrade_connection(self):
        version = self.environ.get("HTTP_SEC_WEBSOCKET_VERSION")
        if version not in self.SUPPORTED_VERSIONS:
            self.start_response("400 Bad Request", [("Sec-WebSocket-Version", ", ".join(self.SUPPORTED_VERSIONS))])
            return [b"Unsupported WebSocket version"]
        key = self.environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            valid_key = False
        if not valid_key:
            self.start_response("400 Bad Request", [])
            return [b"Invalid Sec-WebSocket-Key"]

        # small frames go out at once: without this, Nagle holds a frame back until the previous one is acked
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.websocket = ServiceWebSocket(self.environ, Stream(self), self, self.server.max_message_bytes)
        self.environ.update({"wsgi.websocket_version": version, "wsgi.websocket": self.websocket})
        accept = base64.b64encode(hashlib.sha1((key + HANDSHAKE_GUID).encode("latin-1")).digest()).decode("latin-1")
        self.start_response(
            "101 Switching Protocols",
            [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)],
        )
        return None
