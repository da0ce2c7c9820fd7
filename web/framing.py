"""WebSocket framing (RFC 6455) as pure functions: bytes in, messages out, and back.

`FrameDecoder` is fed whatever bytes the socket had and returns the complete
messages in them, keeping a partial frame for the next call, so a socket can
be read when it is readable instead of by a greenlet parked on it. Nothing
here touches a socket, which is what lets the unit tests cover every
malformed frame directly.
"""

from __future__ import annotations

import struct
from typing import Callable

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
MAX_CONTROL_PAYLOAD = 125
MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2
# frames in one fragmented message: a 64 KiB message in 512-byte pieces. Browsers never fragment what they send,
# and the list of fragments must stay short however small each one is (a zero-length continuation is 6 bytes)
MAX_FRAGMENTS = 128
_DATA_OPCODES = (OPCODE_TEXT, OPCODE_BINARY)
_CONTROL_OPCODES = (OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG)


class ProtocolError(Exception):
    """The peer broke the framing rules; the connection is closed with 1002.

    `decoded` holds the messages of the same `feed` call that came before the
    bad frame: they are handed out all the same, whatever the read boundaries.
    """

    def __init__(self, message: str):
        super().__init__(message)
        self.decoded: list[tuple[int, str | bytes]] = []


class InvalidUtf8(ProtocolError):
    """A text message or close reason that is not UTF-8; closed with 1007."""


class MessageTooLarge(ProtocolError):
    """A message over the size limit or in too many fragments, detected from a frame's header before its
    payload is read; closed with 1009."""


class FrameRateExceeded(ProtocolError):
    """The peer sends frames faster than its `admit_frame` allows; closed with 4429 before the frame is decoded."""


def _admit_every_frame() -> bool:
    return True


class FrameDecoder:
    """Turns the bytes a client sends into messages: `(opcode, payload)` pairs.

    Text messages come out as `str`, binary ones as `bytes`, control frames
    (close, ping, pong) as `bytes`; fragments are reassembled. Every frame,
    control and continuation frames included, is first passed to
    `admit_frame` (a rate limit). Errors raise a `ProtocolError` subclass,
    after which the decoder must not be fed again.
    """

    __slots__ = (
        "max_message_bytes", "max_fragments", "_admit_frame", "_pending", "_fragments", "_fragments_opcode",
        "_fragments_size",
    )  # fmt: skip

    def __init__(
        self,
        max_message_bytes: int,
        max_fragments: int = MAX_FRAGMENTS,
        admit_frame: Callable[[], bool] = _admit_every_frame,
    ):
        self.max_message_bytes = max_message_bytes
        self.max_fragments = max_fragments
        self._admit_frame = admit_frame
        # the start of a frame whose end has not arrived yet; a bytearray, so that a frame arriving in many
        # small reads is appended to rather than copied whole at every read
        self._pending = bytearray()
        self._fragments: list[bytes] = []
        self._fragments_opcode = 0  # opcode of the fragmented message in progress, 0 if none
        self._fragments_size = 0

    def feed(self, data: bytes) -> list[tuple[int, str | bytes]]:
        """The messages `data` completes, in order; raises a `ProtocolError` carrying those before a bad frame."""
        messages: list[tuple[int, str | bytes]] = []
        if self._pending:
            self._pending += data
            data = self._pending
        try:
            self._decode(data, messages)
        except ProtocolError as error:
            error.decoded = messages
            raise
        return messages

    def _decode(self, buffer: bytes | bytearray, messages: list[tuple[int, str | bytes]]) -> None:
        position, end = 0, len(buffer)
        while end - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            if first & 0x70:
                raise ProtocolError("reserved bits set")
            if not second & 0x80:
                raise ProtocolError("client frames must be masked")
            opcode, length, header = first & 0x0F, second & 0x7F, 2
            if length == 126:
                if end - position < 4:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 4], "big"), 4
            elif length == 127:
                if end - position < 10:
                    break
                length, header = int.from_bytes(buffer[position + 2 : position + 10], "big"), 10
            self._check_header(opcode, bool(first & 0x80), length)
            payload_at = position + header + 4
            if end - payload_at < length:
                break
            if not self._admit_frame():
                raise FrameRateExceeded("frames faster than the rate limit")
            payload = _unmask(buffer[payload_at : payload_at + length], buffer[payload_at - 4 : payload_at])
            position = payload_at + length
            message = self._complete(opcode, bool(first & 0x80), payload)
            if message is not None:
                messages.append(message)
        if position == end:
            self._pending = bytearray()
        elif position or buffer is not self._pending:
            self._pending = bytearray(buffer[position:])

    def _check_header(self, opcode: int, fin: bool, length: int) -> None:
        if opcode in _CONTROL_OPCODES:
            if length > MAX_CONTROL_PAYLOAD or not fin:
                raise ProtocolError("control frames must be whole and at most 125 bytes")
        elif opcode in _DATA_OPCODES:
            if self._fragments_opcode:
                raise ProtocolError("new message inside a fragmented one")
            if length > self.max_message_bytes:
                raise MessageTooLarge(f"message of {length} bytes")
        elif opcode == OPCODE_CONTINUATION:
            if not self._fragments_opcode:
                raise ProtocolError("continuation frame outside a fragmented message")
            if len(self._fragments) >= self.max_fragments:
                raise MessageTooLarge(f"message in more than {self.max_fragments} fragments")
            if self._fragments_size + length > self.max_message_bytes:
                raise MessageTooLarge(f"message of at least {self._fragments_size + length} bytes")
        else:
            raise ProtocolError(f"unknown opcode {opcode}")

    def _complete(self, opcode: int, fin: bool, payload: bytes) -> tuple[int, str | bytes] | None:
        """The message this frame completes, if any."""
        if opcode in _CONTROL_OPCODES:
            return opcode, payload
        if not fin:
            if opcode != OPCODE_CONTINUATION:
                self._fragments_opcode = opcode
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            return None
        if opcode == OPCODE_CONTINUATION:
            self._fragments.append(payload)
            opcode, payload = self._fragments_opcode, b"".join(self._fragments)
            self._fragments, self._fragments_opcode, self._fragments_size = [], 0, 0
        if opcode == OPCODE_BINARY:
            return opcode, payload
        try:
            return opcode, payload.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidUtf8("text message is not valid UTF-8") from None


def parse_close(payload: bytes) -> int:
    """The status code of a peer's close frame (1005, "no status", if it has none); raises on a malformed one."""
    if not payload:
        return 1005
    if len(payload) < 2:
        raise ProtocolError("close frame with a one-byte payload")
    (code,) = struct.unpack("!H", payload[:2])
    if not is_valid_close_code(code):
        raise ProtocolError(f"invalid close code {code}")
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidUtf8("close reason is not valid UTF-8") from None
    return code


def is_valid_close_code(code: int) -> bool:
    """Codes a peer may send (RFC 6455 7.4): the defined ones except those reserved for local use, and 3000-4999."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented, unmasked frame, as a server sends it."""
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, length) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, length) + payload


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload: the code, then the reason cut to fit a control frame on a character boundary."""
    encoded = reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
    return struct.pack("!H", code) + encoded.decode("utf-8", "ignore").encode("utf-8")


def _unmask(payload: bytes, mask: bytes) -> bytes:
    length = len(payload)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")
