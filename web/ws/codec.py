"""The WebSocket protocol (RFC 6455) of one server connection, sans I/O: bytes in, decisions out.

`FrameDecoder` is fed whatever bytes the socket had and returns the complete
messages in them, carrying a partial frame over to the next call, so a socket
can be read when it is readable instead of by a greenlet parked on it.
`ServerStateMachine` decides what each decoded frame means: a message for the
listener, a ping to answer, the pong our keep-alive awaits, the peer's close
(answered, unless it answers ours), or a framing error and the close code RFC
6455 gives it. It also keeps the close handshake's read budget. Nothing here
touches a socket or a timer: the connection (`web.ws.connection`) moves the
bytes, the transport (`web.ws.transport`) writes, and the unit tests cover
every malformed frame and every turn of the close handshake directly.
"""

from __future__ import annotations

import codecs
import logging
import os
import struct
from typing import Callable, Protocol

from protocol.frames import CloseCode

log = logging.getLogger(__name__)
OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
MAX_CONTROL_PAYLOAD = 125
MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD - 2
_DATA_OPCODES = (OPCODE_TEXT, OPCODE_BINARY)
_CONTROL_OPCODES = (OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG)
_utf8_decoder = codecs.getincrementaldecoder("utf-8")
# frames in one fragmented message: a 64 KiB message in 512-byte pieces. Browsers never fragment what they send,
# and the fragments of a message must stay few however small each one is (a zero-length continuation is 6 bytes)
MAX_FRAGMENTS = 128
# Frames a closing connection skips while it waits for the peer's close. An honest peer has a few in flight;
# one that sends more is not answering, and the rest of what it sends is dropped unparsed until TCP is cut.
MAX_FRAMES_BEFORE_CLOSE = 1000
_SKIP_EVERYTHING = 1 << 64
# read once the server decided to close, for the rest of a frame on its way (a peer learns of a limit only from our
# close) and the peer's close; a peer that sends more is not closing, and nothing more is read from it
READ_WHILE_CLOSING_BYTES = 1024 * 1024
# close codes a peer may choose beyond RFC 6455's own: registered (3000-3999) and private (4000-4999) ones
FIRST_APPLICATION_CLOSE_CODE = 3000
LAST_APPLICATION_CLOSE_CODE = 4999


class ProtocolError(Exception):
    """The peer broke the framing rules; the connection is closed with `close_code` (1002).

    `decoded` holds the messages of the same `feed` call that came before the
    bad frame: they are handed out all the same, whatever the read boundaries.
    """

    close_code = CloseCode.PROTOCOL_ERROR
    close_reason = "protocol error"

    def __init__(self, message: str):
        super().__init__(message)
        self.decoded: list[tuple[int, str | bytes]] = []


class InvalidUtf8(ProtocolError):
    """A text message or close reason that is not UTF-8; closed with 1007."""

    close_code = CloseCode.INVALID_PAYLOAD
    close_reason = "invalid UTF-8"


class MessageTooLarge(ProtocolError):
    """A message over the size limit or in too many fragments, detected from a frame's header before its
    payload is read; closed with 1009."""

    close_code = CloseCode.MESSAGE_TOO_BIG
    close_reason = "frame too large"


class FrameRateExceeded(ProtocolError):
    """The peer sends frames faster than its `admit_frame` allows; closed with 4429 before the frame is decoded."""

    close_code = CloseCode.RATE_LIMITED
    close_reason = "too many frames"


def admit_every_frame() -> bool:
    """The frame rate limit of a connection that has none."""
    return True


class FrameDecoder:
    """Turns the bytes a client sends into messages: `(opcode, payload)` pairs.

    Text messages come out as `str`, binary ones as `bytes`, control frames
    (close, ping, pong) as `bytes`; fragments are reassembled, at most
    `max_fragments` to a message. Every frame, control and continuation frames
    included, is first passed to `admit_frame` (a rate limit). A data frame
    whose payload spans several reads is taken as it arrives, and a text
    message is checked as UTF-8 incrementally: invalid text raises in the read
    that brings the offending byte, not when the message ends (RFC 6455 8.1:
    fail fast). Errors raise a `ProtocolError` subclass; after one, the
    connection closes and calls `discard_until_close`.
    """

    __slots__ = (
        "max_message_bytes", "max_fragments", "_admit_frame", "_pending", "_closing", "_frame_remaining",
        "_frame_fin", "_frame_mask", "_frame_offset", "_message_opcode", "_message", "_message_size",
        "_message_fragments", "_utf8", "_frames_to_skip",
    )  # fmt: skip

    def __init__(
        self,
        max_message_bytes: int,
        max_fragments: int = MAX_FRAGMENTS,
        admit_frame: Callable[[], bool] = admit_every_frame,
    ):
        self.max_message_bytes = max_message_bytes
        self.max_fragments = max_fragments
        self._admit_frame = admit_frame
        self._pending = b""  # the start of a header, or of a control frame, whose end has not arrived yet
        self._closing = False  # only the peer's close frame matters now
        self._frames_to_skip = MAX_FRAMES_BEFORE_CLOSE  # in closing mode
        # a data frame whose payload is still arriving (in closing mode: the bytes left to skip)
        self._frame_remaining = 0
        self._frame_fin = False
        self._frame_mask = b""
        self._frame_offset = 0  # payload bytes of that frame already taken, for the mask's phase
        # a message assembled from fragments, or from a frame that spans reads (opcode 0: none)
        self._message_opcode = 0
        self._message = bytearray()  # one buffer, however small the pieces it arrives in
        self._message_size = 0
        self._message_fragments = 0
        self._utf8: codecs.IncrementalDecoder | None = None  # a text message's incremental validator

    def feed(self, data: bytes) -> list[tuple[int, str | bytes]]:
        """The messages `data` completes, in order; raises a `ProtocolError` carrying those before a bad frame."""
        messages: list[tuple[int, str | bytes]] = []
        buffer = self._pending + data if self._pending else data
        try:
            if self._closing:
                self._find_close(buffer, messages)
            else:
                self._decode(buffer, messages)
        except ProtocolError as error:
            error.decoded = messages
            raise
        return messages

    def discard_until_close(self) -> None:
        """The connection is closing: from now on hand out only the peer's close frame, and skip every other
        frame, unchecked and unbuffered (the rest of a frame in progress included)."""
        self._closing = True
        self._end_message()

    def _decode(self, buffer: bytes, messages: list[tuple[int, str | bytes]]) -> None:
        position, end = 0, len(buffer)
        try:
            if self._frame_remaining:
                chunk, position = self._take_payload(buffer, 0)
                self._add_payload(chunk, messages)
            while end - position >= 2:
                first, second = buffer[position], buffer[position + 1]
                if first & 0x70:
                    raise ProtocolError("reserved bits set")
                if not second & 0x80:
                    raise ProtocolError("client frames must be masked")
                length, mask_at = second & 0x7F, position + 2
                if length > 125:
                    header = _payload_length(buffer, position, end)
                    if header is None:
                        break
                    length, mask_at = header
                opcode, fin, payload_at = first & 0x0F, bool(first & 0x80), mask_at + 4
                self._check_header(opcode, fin, length)
                if end - payload_at >= length:
                    self._admit()
                    payload = _unmask(buffer[payload_at : payload_at + length], buffer[mask_at:payload_at])
                    position = payload_at + length
                    message = self._complete(opcode, fin, payload)
                    if message is not None:
                        messages.append(message)
                elif opcode in _CONTROL_OPCODES or end < payload_at:
                    break  # a control frame is taken whole, a header with its mask key
                else:  # a data frame still arriving: take its payload as it comes
                    self._admit()
                    self._next_fragment(opcode)
                    self._message_size += length
                    self._frame_remaining, self._frame_fin, self._frame_offset = length, fin, 0
                    self._frame_mask = buffer[mask_at:payload_at]
                    chunk, position = self._take_payload(buffer, payload_at)
                    self._add_payload(chunk, messages)
        finally:
            self._pending = buffer[position:] if position < end else b""

    def _check_header(self, opcode: int, fin: bool, length: int) -> None:
        if opcode in _CONTROL_OPCODES:
            if length > MAX_CONTROL_PAYLOAD or not fin:
                raise ProtocolError("control frames must be whole and at most 125 bytes")
        elif opcode in _DATA_OPCODES:
            if self._message_opcode:
                raise ProtocolError("new message inside a fragmented one")
            if length > self.max_message_bytes:
                raise MessageTooLarge(f"message of {length} bytes")
        elif opcode == OPCODE_CONTINUATION:
            if not self._message_opcode:
                raise ProtocolError("continuation frame outside a fragmented message")
            if self._message_fragments >= self.max_fragments:
                raise MessageTooLarge(f"message in more than {self.max_fragments} fragments")
            if self._message_size + length > self.max_message_bytes:
                raise MessageTooLarge(f"message of at least {self._message_size + length} bytes")
        else:
            raise ProtocolError(f"unknown opcode {opcode}")

    def _complete(self, opcode: int, fin: bool, payload: bytes) -> tuple[int, str | bytes] | None:
        """The message this whole frame completes, if any."""
        if opcode in _CONTROL_OPCODES:
            return opcode, payload
        if fin and opcode != OPCODE_CONTINUATION:  # a message in one frame: the common case
            return opcode, _utf8_text(payload) if opcode == OPCODE_TEXT else payload
        self._next_fragment(opcode)
        self._message_size += len(payload)
        return self._append(payload, fin)

    def _take_payload(self, buffer: bytes, at: int) -> tuple[bytes, int]:
        """The part of the arriving frame's payload that `buffer` holds from `at`, unmasked, and where it ends."""
        size = min(self._frame_remaining, len(buffer) - at)
        phase = self._frame_offset % 4
        chunk = _unmask(buffer[at : at + size], self._frame_mask[phase:] + self._frame_mask[:phase])
        self._frame_remaining -= size
        self._frame_offset += size
        return chunk, at + size

    def _add_payload(self, chunk: bytes, messages: list[tuple[int, str | bytes]]) -> None:
        message = self._append(chunk, self._frame_fin and not self._frame_remaining)
        if message is not None:
            messages.append(message)

    def _admit(self) -> None:
        """Take the frame about to be consumed through the rate limit (once per frame, however it arrives)."""
        if not self._admit_frame():
            raise FrameRateExceeded("frames faster than the rate limit")

    def _next_fragment(self, opcode: int) -> None:
        """A frame of a fragmented message is being consumed: the first starts the message, the others count."""
        if opcode == OPCODE_CONTINUATION:
            self._message_fragments += 1
            return
        self._message_opcode, self._message_fragments = opcode, 1
        self._utf8 = _utf8_decoder() if opcode == OPCODE_TEXT else None

    def _append(self, payload: bytes, last: bool) -> tuple[int, str | bytes] | None:
        """Add the next piece of the message in progress; the message, if `last` ends it."""
        if self._utf8 is not None:
            try:
                self._utf8.decode(payload, last)  # only validates: the text is decoded whole at the end
            except UnicodeDecodeError:
                raise InvalidUtf8("text message is not valid UTF-8") from None
        self._message += payload
        if not last:
            return None
        opcode, message = self._message_opcode, self._message
        self._end_message()
        return opcode, message.decode("utf-8") if opcode == OPCODE_TEXT else bytes(message)

    def _end_message(self) -> None:
        self._message_opcode, self._message, self._message_size, self._utf8 = 0, bytearray(), 0, None
        self._message_fragments = 0

    def _find_close(self, buffer: bytes, messages: list[tuple[int, str | bytes]]) -> None:
        """Closing mode: skip frames, whatever they hold, up to the peer's close frame. That comes out as soon as
        its first two bytes are here, with an empty payload: it ends the connection, whatever it says."""
        end = len(buffer)
        position = min(self._frame_remaining, end)
        self._frame_remaining -= position
        while end - position >= 2:
            if buffer[position] & 0x0F == OPCODE_CLOSE:
                messages.append((OPCODE_CLOSE, b""))
                position = end
                break
            header = _payload_length(buffer, position, end)
            if header is None:
                break
            length, payload_at = header
            frame_end = payload_at + (4 if buffer[position + 1] & 0x80 else 0) + length
            self._frames_to_skip -= 1
            if not self._frames_to_skip:
                frame_end = position + _SKIP_EVERYTHING
            if end < frame_end:
                self._frame_remaining, position = frame_end - end, end
            else:
                position = frame_end
        self._pending = buffer[position:] if position < end else b""


def parse_close(payload: bytes) -> int:
    """The status code of a peer's close frame (1005, "no status", if it has none); raises on a malformed one."""
    if not payload:
        return CloseCode.NO_STATUS_RECEIVED
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
    return (
        CloseCode.NORMAL_CLOSURE <= code <= CloseCode.UNSUPPORTED_DATA
        or CloseCode.INVALID_PAYLOAD <= code <= CloseCode.BAD_GATEWAY
        or FIRST_APPLICATION_CLOSE_CODE <= code <= LAST_APPLICATION_CLOSE_CODE
    )


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


class Writer(Protocol):
    """The write side of the connection, as the state machine drives it (a `WebSocketTransport`)."""

    id: int
    peer: str
    closing: bool  # our close frame is queued or sent, or the connection is gone

    def send_control(self, opcode: int, payload: bytes) -> None: ...

    def close(self, code: int, reason: str = "") -> None: ...


class MessageListener(Protocol):
    """Who gets the connection's data messages: text as `str`, binary as `bytes`."""

    def on_message(self, message: str | bytes) -> None: ...


class ServerStateMachine:
    """What one server connection does with the bytes its peer sends, until the connection is over.

    `receive` decodes them: data messages go to the listener and pings are
    answered until the server decides to close (its close frame is queued,
    `writer.closing`); from then on only the peer's close frame counts, and at
    most READ_WHILE_CLOSING_BYTES more are read. The peer's close ends the
    connection (`over`): answered with its own code, unless it answers ours. A
    framing error closes with the code its `ProtocolError` names; frames over
    the rate limit close with 4429, after which nothing more is read. The
    caller reads again while `reading`, and releases the socket once `over`.
    """

    __slots__ = ("over", "reading", "_writer", "_listener", "_decoder", "_read_while_closing", "_awaited_pong")

    def __init__(
        self,
        writer: Writer,
        listener: MessageListener,
        max_message_bytes: int,
        max_fragments: int = MAX_FRAGMENTS,
        admit_frame: Callable[[], bool] = admit_every_frame,
    ):
        self.over = False  # the peer's close arrived, or the caller ended the connection (`end`)
        self.reading = True  # False once nothing more is to be read: the close deadline ends the connection
        self._writer = writer
        self._listener = listener
        self._decoder = FrameDecoder(max_message_bytes, max_fragments, admit_frame)
        self._read_while_closing = 0  # bytes read since the server decided to close
        self._awaited_pong: bytes | None = None  # the payload of our last ping, until the peer's pong echoes it

    def receive(self, data: bytes) -> None:
        """Act on the bytes of one read; the listener's exceptions propagate (the caller then `fail`s)."""
        if self._writer.closing:
            self._read_while_closing += len(data)
            # enough for the rest of a frame on its way and the peer's close; a peer sending more is not closing
            self.reading = self._read_while_closing <= READ_WHILE_CLOSING_BYTES
            self._decoder.discard_until_close()
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as error:
            self._handle(error.decoded)  # the frames before the bad one are valid
            self._refuse(error)
            messages = self._decoder.feed(b"")  # the rest of this read may hold the peer's close already
        self._handle(messages)

    def keep_alive(self) -> bool:
        """Ping the peer (see `web.ws.connection.keep_alive`); False if it did not answer the previous ping.

        Only a pong that echoes our ping's random payload counts: the ping is queued behind everything sent
        before it, so the answer also proves the peer read all of that. A peer that sends but does not read,
        or reads too slowly to drain its queue within a round, is dropped like one that vanished. A closing
        connection is left to its close deadline.
        """
        if self.over or self._writer.closing:
            return True
        if self._awaited_pong is not None:
            return False
        self._awaited_pong = os.urandom(8)
        self._writer.send_control(OPCODE_PING, self._awaited_pong)
        return True

    def fail(self, code: int, reason: str) -> None:
        """Close with `code`; from then on only the peer's close is decoded, and it ends the connection at once
        (else the close deadline does)."""
        self._writer.close(code, reason)
        self._decoder.discard_until_close()

    def end(self) -> None:
        """The connection is over for another reason (end of stream, close deadline, no pong): act on nothing
        more, not even on the rest of a read in progress."""
        self.over = True

    def _handle(self, messages: list[tuple[int, str | bytes]]) -> None:
        """Hand data messages to the listener and answer pings, until the server closes: from then on only the
        peer's close frame counts."""
        for opcode, payload in messages:
            if self.over:
                return
            if opcode == OPCODE_CLOSE:
                self._on_close_frame(payload)
            elif self._writer.closing:
                continue  # we are closing: only the peer's close matters now
            elif opcode == OPCODE_TEXT or opcode == OPCODE_BINARY:
                self._listener.on_message(payload)
            elif opcode == OPCODE_PING:
                self._writer.send_control(OPCODE_PONG, payload)
            elif opcode == OPCODE_PONG and payload == self._awaited_pong:
                self._awaited_pong = None

    def _on_close_frame(self, payload: bytes) -> None:
        """The peer's close ends the connection: answer it, unless it answers ours; then TCP is closed at once."""
        if not self._writer.closing:
            try:
                code = parse_close(payload)
            except ProtocolError as error:
                self._refuse(error)
            else:
                self._writer.close(CloseCode.NORMAL_CLOSURE if code == CloseCode.NO_STATUS_RECEIVED else code)
        self.over = True

    def _refuse(self, error: ProtocolError) -> None:
        """Close for a framing error with the code RFC 6455 gives it (1009, 1007 or 1002), or for frames over the
        rate limit with 4429, after which nothing more is read."""
        writer = self._writer
        if isinstance(error, FrameRateExceeded):
            log.info("socket %s (%s): frames over the rate limit; closing", writer.id, writer.peer)
            self.reading = False
        else:
            log.debug("socket %s (%s): protocol error: %s", writer.id, writer.peer, error)
        self.fail(error.close_code, error.close_reason)


def _payload_length(buffer: bytes, position: int, end: int) -> tuple[int, int] | None:
    """The payload length the frame header at `position` gives, and where the header goes on (the mask key,
    if any); None while the length's bytes have not all arrived."""
    length = buffer[position + 1] & 0x7F
    if length == 126:
        if end - position < 4:
            return None
        return int.from_bytes(buffer[position + 2 : position + 4], "big"), position + 4
    if length == 127:
        if end - position < 10:
            return None
        return int.from_bytes(buffer[position + 2 : position + 10], "big"), position + 10
    return length, position + 2


def _utf8_text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidUtf8("text message is not valid UTF-8") from None


def _unmask(payload: bytes, mask: bytes) -> bytes:
    length = len(payload)
    if not length:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")
