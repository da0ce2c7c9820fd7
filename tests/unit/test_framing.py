"""Pure tests of `web.ws.codec`: the WebSocket frame decoder and encoders, no sockets.

Client frames are built here by `client_frame`, which masks them itself, so
the decoder is checked against an encoder that shares no code with it.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from web.ws.codec import (
    MAX_CLOSE_REASON_BYTES,
    MAX_CONTROL_PAYLOAD,
    MAX_FRAGMENTS,
    MAX_FRAMES_BEFORE_CLOSE,
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    FrameDecoder,
    FrameRateExceeded,
    InvalidUtf8,
    MessageTooLarge,
    ProtocolError,
    close_payload,
    encode_frame,
    parse_close,
)

LARGE_LIMIT = 1 << 20
MASK = b"\x37\xfa\x21\x3d"
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- helpers


def client_frame(
    opcode: int,
    payload: bytes | str,
    fin: bool = True,
    mask: bytes | None = MASK,
    rsv: int = 0,
    length: int | None = None,
) -> bytes:
    """One frame as a client sends it: masked with `mask` (unmasked if None).

    `rsv` is OR-ed into the first byte as is (0x40, 0x20, 0x10); `length`
    overrides the length written in the header (the payload is still `payload`).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask is not None else 0
    if size < 126:
        header = bytes((first, mask_bit | size))
    elif size < 1 << 16:
        header = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
    if mask is None:
        return header + payload
    assert len(mask) == 4
    return header + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def header_of(frame: bytes) -> bytes:
    """The header of a masked client frame: everything before the payload, mask key included."""
    second = frame[1] & 0x7F
    size = 2 + {126: 2, 127: 8}.get(second, 0)
    return frame[: size + (4 if frame[1] & 0x80 else 0)]


def mask_server_frame(frame: bytes, mask: bytes = MASK) -> bytes:
    """A server frame (from `encode_frame`) turned into the masked frame a client would send."""
    assert not frame[1] & 0x80, "server frames are not masked"
    header = header_of(frame)
    payload = frame[len(header) :]
    return (
        bytes((header[0], header[1] | 0x80)) + header[2:] + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


def feed_in_chunks(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[tuple[int, str | bytes]]:
    """Feed `data` split at the (sorted, deduplicated) positions `cuts`; every message decoded, in order."""
    messages = []
    start = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        messages.extend(decoder.feed(data[start:cut]))
        start = cut
    return messages


def pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


# sizes at and around each length form: 7-bit (0-125), 16-bit (126-65535), 64-bit (65536 and up)
SIZES = [0, 1, 125, 126, 127, 1000, 65535, 65536, 70_000]


def length_form(size: int) -> int:
    return size if size < 126 else (126 if size < 1 << 16 else 127)


# ---------------------------------------------------------------- whole messages


@pytest.mark.parametrize("size", SIZES)
def test_text_message_of_each_length_form(size: int) -> None:
    text = ("a\u00e9\u20ac\U0001f600" * (size // 10 + 1)).encode("utf-8")[:size].decode("utf-8", "ignore")
    text += "z" * (size - len(text.encode("utf-8")))
    assert len(text.encode("utf-8")) == size
    frame = client_frame(OPCODE_TEXT, text)
    assert frame[1] & 0x7F == length_form(size)
    assert FrameDecoder(LARGE_LIMIT).feed(frame) == [(OPCODE_TEXT, text)]


@pytest.mark.parametrize("size", SIZES)
def test_binary_message_of_each_length_form(size: int) -> None:
    payload = pattern(size)
    frame = client_frame(OPCODE_BINARY, payload)
    assert frame[1] & 0x7F == length_form(size)
    [(opcode, decoded)] = FrameDecoder(LARGE_LIMIT).feed(frame)
    assert opcode == OPCODE_BINARY and type(decoded) is bytes and decoded == payload


def test_text_comes_out_as_str_and_binary_and_control_payloads_as_bytes() -> None:
    decoder = FrameDecoder(LARGE_LIMIT)
    messages = decoder.feed(
        client_frame(OPCODE_TEXT, "hi")
        + client_frame(OPCODE_BINARY, b"hi")
        + client_frame(OPCODE_PING, b"hi")
        + client_frame(OPCODE_PONG, b"hi")
        + client_frame(OPCODE_CLOSE, struct.pack("!H", 1000) + b"hi")
    )
    assert messages == [
        (OPCODE_TEXT, "hi"),
        (OPCODE_BINARY, b"hi"),
        (OPCODE_PING, b"hi"),
        (OPCODE_PONG, b"hi"),
        (OPCODE_CLOSE, b"\x03\xe8hi"),
    ]
    assert [type(payload) for _, payload in messages] == [str, bytes, bytes, bytes, bytes]


def test_several_frames_in_one_feed_come_out_in_order() -> None:
    frames = [
        (OPCODE_TEXT, "first"),
        (OPCODE_TEXT, ""),
        (OPCODE_BINARY, pattern(300)),
        (OPCODE_PING, b""),
        (OPCODE_TEXT, "x" * 70_000),
        (OPCODE_PONG, b"p" * MAX_CONTROL_PAYLOAD),
        (OPCODE_TEXT, "last \u20ac"),
    ]
    data = b"".join(client_frame(opcode, payload) for opcode, payload in frames)
    assert FrameDecoder(LARGE_LIMIT).feed(data) == frames


def test_each_frame_may_use_its_own_mask() -> None:
    data = b"".join(client_frame(OPCODE_TEXT, f"mask {n}", mask=bytes((n, 255 - n, n * 7 % 256, 0))) for n in range(20))
    assert FrameDecoder(LARGE_LIMIT).feed(data) == [(OPCODE_TEXT, f"mask {n}") for n in range(20)]


def test_a_zero_mask_leaves_the_payload_as_sent() -> None:
    assert FrameDecoder(LARGE_LIMIT).feed(client_frame(OPCODE_TEXT, "plain", mask=b"\0\0\0\0")) == [
        (OPCODE_TEXT, "plain")
    ]


def test_feeding_nothing_yields_nothing_and_keeps_what_is_pending() -> None:
    decoder = FrameDecoder(LARGE_LIMIT)
    frame = client_frame(OPCODE_TEXT, "later")
    assert decoder.feed(b"") == []
    assert decoder.feed(frame[:3]) == []
    assert decoder.feed(b"") == []
    assert decoder.feed(frame[3:]) == [(OPCODE_TEXT, "later")]
    assert decoder.feed(b"") == []


# ---------------------------------------------------------------- split at every byte boundary


SPLIT_FRAMES = [
    pytest.param(client_frame(OPCODE_TEXT, ""), id="empty-text"),
    pytest.param(client_frame(OPCODE_TEXT, "h\u00e9llo \u20ac \U0001f600"), id="text-7bit"),
    pytest.param(client_frame(OPCODE_BINARY, pattern(125)), id="binary-125"),
    pytest.param(client_frame(OPCODE_TEXT, "\u20ac" * 100), id="text-16bit"),
    pytest.param(client_frame(OPCODE_BINARY, pattern(300)), id="binary-16bit"),
    pytest.param(client_frame(OPCODE_PING, b"ping!"), id="ping"),
]


def _expected(frame: bytes) -> list[tuple[int, str | bytes]]:
    return FrameDecoder(LARGE_LIMIT).feed(frame)


@pytest.mark.parametrize("frame", SPLIT_FRAMES)
def test_a_frame_fed_byte_by_byte_comes_out_once_at_its_last_byte(frame: bytes) -> None:
    expected = _expected(frame)
    assert len(expected) == 1
    decoder = FrameDecoder(LARGE_LIMIT)
    for i in range(len(frame) - 1):
        assert decoder.feed(frame[i : i + 1]) == [], f"message before its last byte (byte {i})"
    assert decoder.feed(frame[-1:]) == expected
    assert decoder.feed(b"") == []


@pytest.mark.parametrize("frame", SPLIT_FRAMES)
def test_a_frame_split_in_two_at_every_position_comes_out_the_same(frame: bytes) -> None:
    expected = _expected(frame)
    for cut in range(1, len(frame)):
        decoder = FrameDecoder(LARGE_LIMIT)
        assert decoder.feed(frame[:cut]) == [], cut
        assert decoder.feed(frame[cut:]) == expected, cut


def test_a_64bit_frame_split_anywhere_in_its_header_or_payload_start_comes_out_the_same() -> None:
    payload = pattern(70_000)
    frame = client_frame(OPCODE_BINARY, payload)
    assert frame[1] & 0x7F == 127
    for cut in list(range(1, 20)) + [len(frame) // 2, len(frame) - 1]:
        decoder = FrameDecoder(LARGE_LIMIT)
        assert decoder.feed(frame[:cut]) == [], cut
        assert decoder.feed(frame[cut:]) == [(OPCODE_BINARY, payload)], cut


def test_two_frames_split_inside_the_second_header_give_the_first_at_once() -> None:
    first, second = client_frame(OPCODE_TEXT, "one"), client_frame(OPCODE_TEXT, "two" * 50)
    for cut in range(1, len(header_of(second)) + 1):
        decoder = FrameDecoder(LARGE_LIMIT)
        assert decoder.feed(first + second[:cut]) == [(OPCODE_TEXT, "one")], cut
        assert decoder.feed(second[cut:]) == [(OPCODE_TEXT, "two" * 50)], cut


# one message of the generated stream: (opcode, payload, number of fragments, pings between fragments)
_payload_sizes = st.one_of(
    st.integers(0, 300),
    st.sampled_from([125, 126, 127, 65535, 65536, 65537]),
)


@st.composite
def _messages(draw: st.DrawFn) -> tuple[int, str | bytes]:
    if draw(st.booleans()):
        text = draw(
            st.one_of(st.text(max_size=120), st.builds(lambda n: "\u20ac" * n, _payload_sizes.map(lambda n: n // 3)))
        )
        return OPCODE_TEXT, text
    size = draw(_payload_sizes)
    payload = draw(st.binary(min_size=size, max_size=size)) if size <= 300 else pattern(size)
    return OPCODE_BINARY, payload


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, str | bytes]]]:
    """Bytes a client could send and the messages they hold: whole and fragmented messages, control frames between."""
    data = b""
    expected: list[tuple[int, str | bytes]] = []
    masks = st.binary(min_size=4, max_size=4)
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.integers(0, 4)) == 0:
            opcode = draw(st.sampled_from([OPCODE_PING, OPCODE_PONG]))
            payload = draw(st.binary(max_size=MAX_CONTROL_PAYLOAD))
            data += client_frame(opcode, payload, mask=draw(masks))
            expected.append((opcode, payload))
            continue
        opcode, message = draw(_messages())
        raw = message.encode("utf-8") if isinstance(message, str) else message
        # cut points may fall inside a UTF-8 character: fragments are bytes, only the whole message is text
        cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=3)))
        pieces = [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            data += client_frame(opcode if index == 0 else OPCODE_CONTINUATION, piece, fin=last, mask=draw(masks))
            if not last and draw(st.booleans()):
                ping = draw(st.binary(max_size=20))
                data += client_frame(OPCODE_PING, ping, mask=draw(masks))
                expected.append((OPCODE_PING, ping))
        expected.append((opcode, message))
    return data, expected


@PROPERTY_SETTINGS
@given(stream=_streams(), data=st.data())
def test_any_stream_split_into_random_chunks_gives_the_same_messages(
    stream: tuple[bytes, list[tuple[int, str | bytes]]], data: st.DataObject
) -> None:
    raw, expected = stream
    assert FrameDecoder(LARGE_LIMIT).feed(raw) == expected
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=30), label="cuts")
    assert feed_in_chunks(FrameDecoder(LARGE_LIMIT), raw, cuts) == expected


@PROPERTY_SETTINGS
@given(
    opcode=st.sampled_from([OPCODE_TEXT, OPCODE_BINARY]),
    payload=st.binary(max_size=400),
    mask=st.binary(min_size=4, max_size=4),
)
def test_a_small_stream_fed_byte_by_byte_gives_the_same_messages(opcode: int, payload: bytes, mask: bytes) -> None:
    message: str | bytes = payload.decode("latin-1") if opcode == OPCODE_TEXT else payload
    raw = client_frame(opcode, message, mask=mask) + client_frame(OPCODE_PING, payload[:10], mask=mask)
    decoder = FrameDecoder(LARGE_LIMIT)
    messages = []
    for i in range(len(raw)):
        messages.extend(decoder.feed(raw[i : i + 1]))
    assert messages == [(opcode, message), (OPCODE_PING, payload[:10])]


# ---------------------------------------------------------------- fragmented messages


def test_fragmented_text_with_a_ping_between_fragments() -> None:
    decoder = FrameDecoder(LARGE_LIMIT)
    assert decoder.feed(client_frame(OPCODE_TEXT, "hel", fin=False)) == []
    assert decoder.feed(client_frame(OPCODE_PING, b"mid")) == [(OPCODE_PING, b"mid")]
    assert decoder.feed(client_frame(OPCODE_CONTINUATION, "lo ", fin=False)) == []
    assert decoder.feed(client_frame(OPCODE_CONTINUATION, "world")) == [(OPCODE_TEXT, "hello world")]


def test_fragmented_binary_with_ping_and_pong_between_fragments_in_one_feed() -> None:
    data = (
        client_frame(OPCODE_BINARY, b"\x00\x01", fin=False)
        + client_frame(OPCODE_PING, b"1")
        + client_frame(OPCODE_CONTINUATION, b"", fin=False)
        + client_frame(OPCODE_PONG, b"2")
        + client_frame(OPCODE_CONTINUATION, b"\xff", fin=False)
        + client_frame(OPCODE_PING, b"3")
        + client_frame(OPCODE_CONTINUATION, b"\xfe")
    )
    assert FrameDecoder(LARGE_LIMIT).feed(data) == [
        (OPCODE_PING, b"1"),
        (OPCODE_PONG, b"2"),
        (OPCODE_PING, b"3"),
        (OPCODE_BINARY, b"\x00\x01\xff\xfe"),
    ]


def test_fragments_with_a_close_frame_between_them() -> None:
    close = struct.pack("!H", 1000)
    data = client_frame(OPCODE_TEXT, "a", fin=False) + client_frame(OPCODE_CLOSE, close)
    assert FrameDecoder(LARGE_LIMIT).feed(data) == [(OPCODE_CLOSE, close)]


def test_a_message_of_empty_fragments_is_an_empty_message() -> None:
    data = client_frame(OPCODE_TEXT, "", fin=False) + client_frame(OPCODE_CONTINUATION, "", fin=False)
    data += client_frame(OPCODE_CONTINUATION, "")
    assert FrameDecoder(LARGE_LIMIT).feed(data) == [(OPCODE_TEXT, "")]


def test_after_a_fragmented_message_a_new_message_may_start() -> None:
    decoder = FrameDecoder(LARGE_LIMIT)
    data = client_frame(OPCODE_TEXT, "one", fin=False) + client_frame(OPCODE_CONTINUATION, "!")
    data += client_frame(OPCODE_BINARY, b"two", fin=False) + client_frame(OPCODE_CONTINUATION, b"!")
    assert decoder.feed(data) == [(OPCODE_TEXT, "one!"), (OPCODE_BINARY, b"two!")]
    assert decoder.feed(client_frame(OPCODE_TEXT, "three")) == [(OPCODE_TEXT, "three")]
    # the next fragmented message starts from nothing (no leftover fragments, and its own size budget)
    limited = FrameDecoder(10)
    limited.feed(client_frame(OPCODE_TEXT, "12345", fin=False) + client_frame(OPCODE_CONTINUATION, "67890"))
    assert limited.feed(client_frame(OPCODE_TEXT, "abcde", fin=False) + client_frame(OPCODE_CONTINUATION, "fghij")) == [
        (OPCODE_TEXT, "abcdefghij")
    ]


def test_a_multibyte_character_split_across_fragments_is_accepted() -> None:
    euro, smiley = "\u20ac".encode(), "\U0001f600".encode()
    data = (
        client_frame(OPCODE_TEXT, b"a" + euro[:1], fin=False)
        + client_frame(OPCODE_CONTINUATION, euro[1:2], fin=False)
        + client_frame(OPCODE_PING, b"")
        + client_frame(OPCODE_CONTINUATION, euro[2:] + smiley[:3], fin=False)
        + client_frame(OPCODE_CONTINUATION, smiley[3:] + b"z")
    )
    assert FrameDecoder(LARGE_LIMIT).feed(data) == [(OPCODE_PING, b""), (OPCODE_TEXT, "a\u20ac\U0001f600z")]


# ---------------------------------------------------------------- protocol errors


def _raises_exactly(error_type: type[Exception], decoder: FrameDecoder, data: bytes) -> None:
    with pytest.raises(error_type) as info:
        decoder.feed(data)
    assert type(info.value) is error_type, info.value


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70], ids=["rsv1", "rsv2", "rsv3", "all"])
@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY, OPCODE_PING, OPCODE_CONTINUATION])
def test_reserved_bits_are_a_protocol_error_from_the_first_two_bytes(rsv: int, opcode: int) -> None:
    frame = client_frame(opcode, "x", rsv=rsv)
    _raises_exactly(ProtocolError, FrameDecoder(LARGE_LIMIT), frame[:2])
    _raises_exactly(ProtocolError, FrameDecoder(LARGE_LIMIT), frame)


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY, OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE])
def test_an_unmasked_client_frame_is_a_protocol_error(opcode: int) -> None:
    frame = client_frame(opcode, b"", mask=None)
    _raises_exactly(ProtocolError, FrameDecoder(LARGE_LIMIT), frame)
    _raises_exactly(ProtocolError, FrameDecoder(LARGE_LIMIT), client_frame(opcode, b"abc", mask=None)[:2])


def test_an_unmasked_frame_after_a_good_one_in_the_same_feed_is_a_protocol_error() -> None:
    decoder = FrameDecoder(LARGE_LIMIT)
    assert decoder.feed(client_frame(OPCODE_TEXT, "ok")) == [(OPCODE_TEXT, "ok")]
    _raises_exactly(
        ProtocolError, decoder, client_frame(OPCODE_TEXT, "ok") + client_frame(OPCODE_TEXT, "no", mask=None)
    )


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_an_unknown_opcode_is_a_protocol_error(opcode: int) -> None:
    _raises_exactly(ProtocolError, FrameDecoder(LARGE_LIMIT), client_frame(opcode, b"?"))
    _raises_exactly(ProtocolError, FrameDecoder(LARGE_LIMIT), client_frame(opcode, b"?")[:2])


@pytest.mark.parametrize("fin", [True, False])
def test_a_continuation_without_a_start_is_a_protocol_error(fin: bool) -> None:
    _raises_exactly(ProtocolError, FrameDecoder(LARGE_LIMIT), client_frame(OPCODE_CONTINUATION, "x", fin=fin))


def test_a_continuation_after_a_finished_fragmented_message_is_a_protocol_error() -> None:
    decoder = FrameDecoder(LARGE_LIMIT)
    decoder.feed(client_frame(OPCODE_TEXT, "a", fin=False) + client_frame(OPCODE_CONTINUATION, "b"))
    _raises_exactly(ProtocolError, decoder, client_frame(OPCODE_CONTINUATION, "c"))


@pytest.mark.parametrize("first", [OPCODE_TEXT, OPCODE_BINARY])
@pytest.mark.parametrize("second", [OPCODE_TEXT, OPCODE_BINARY])
@pytest.mark.parametrize("second_fin", [True, False])
def test_a_new_data_message_inside_a_fragmented_one_is_a_protocol_error(
    first: int, second: int, second_fin: bool
) -> None:
    decoder = FrameDecoder(LARGE_LIMIT)
    assert decoder.feed(client_frame(first, b"a", fin=False)) == []
    assert decoder.feed(client_frame(OPCODE_CONTINUATION, b"b", fin=False)) == []
    _raises_exactly(ProtocolError, decoder, client_frame(second, b"c", fin=second_fin)[:2])


@pytest.mark.parametrize("opcode", [OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE])
def test_a_control_frame_of_125_bytes_is_accepted(opcode: int) -> None:
    payload = struct.pack("!H", 1000) + b"r" * 123 if opcode == OPCODE_CLOSE else pattern(125)
    assert FrameDecoder(LARGE_LIMIT).feed(client_frame(opcode, payload)) == [(opcode, payload)]


@pytest.mark.parametrize("size", [126, 1000, 70_000])
@pytest.mark.parametrize("opcode", [OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE])
def test_a_control_frame_over_125_bytes_is_a_protocol_error_from_its_header(opcode: int, size: int) -> None:
    frame = client_frame(opcode, pattern(size))
    # the header alone (without even the mask key) is enough
    _raises_exactly(ProtocolError, FrameDecoder(LARGE_LIMIT), header_of(frame)[:-4])
    _raises_exactly(ProtocolError, FrameDecoder(LARGE_LIMIT), frame)


@pytest.mark.parametrize("opcode", [OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE])
def test_a_fragmented_control_frame_is_a_protocol_error(opcode: int) -> None:
    _raises_exactly(ProtocolError, FrameDecoder(LARGE_LIMIT), client_frame(opcode, b"", fin=False)[:2])
    # also inside a fragmented data message
    decoder = FrameDecoder(LARGE_LIMIT)
    decoder.feed(client_frame(OPCODE_TEXT, "a", fin=False))
    _raises_exactly(ProtocolError, decoder, client_frame(opcode, b"x", fin=False))


# ---------------------------------------------------------------- size limit


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
@pytest.mark.parametrize(
    ("limit", "size"),
    [(100, 101), (100, 125), (100, 126), (1000, 1001), (1000, 65536), (65536, 65537), (65536, 2**63 - 1)],
)
def test_a_message_over_the_limit_is_too_large_from_its_header_alone(opcode: int, limit: int, size: int) -> None:
    header = header_of(client_frame(opcode, b"", length=size))  # no payload is ever built
    assert header[1] & 0x7F == length_form(size)
    # the length is enough: neither the mask key nor any of the payload has arrived
    _raises_exactly(MessageTooLarge, FrameDecoder(limit), header[:-4])
    # byte by byte, too: it is raised at the last byte of the length
    decoder = FrameDecoder(limit)
    for byte in header[:-5]:
        assert decoder.feed(bytes((byte,))) == []
    _raises_exactly(MessageTooLarge, decoder, header[-5:-4])


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
def test_a_message_of_exactly_the_limit_is_accepted(opcode: int) -> None:
    payload = b"x" * 200
    expected = payload.decode() if opcode == OPCODE_TEXT else payload
    assert FrameDecoder(200).feed(client_frame(opcode, payload)) == [(opcode, expected)]
    fragmented = client_frame(opcode, payload[:150], fin=False) + client_frame(OPCODE_CONTINUATION, payload[150:])
    assert FrameDecoder(200).feed(fragmented) == [(opcode, expected)]


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
def test_fragments_whose_sum_exceeds_the_limit_are_too_large_at_the_header_of_the_one_that_exceeds(opcode: int) -> None:
    decoder = FrameDecoder(100)
    assert decoder.feed(client_frame(opcode, b"a" * 60, fin=False)) == []
    assert decoder.feed(client_frame(OPCODE_PING, pattern(125))) == [(OPCODE_PING, pattern(125))]  # not counted
    assert decoder.feed(client_frame(OPCODE_CONTINUATION, b"b" * 40, fin=False)) == []
    # 60 + 40 + 1: the header of the last fragment is enough
    _raises_exactly(MessageTooLarge, decoder, header_of(client_frame(OPCODE_CONTINUATION, b"c"))[:2])


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
def test_many_small_fragments_over_the_limit_are_too_large(opcode: int) -> None:
    decoder = FrameDecoder(100)
    data = client_frame(opcode, b"", fin=False) + b"".join(
        client_frame(OPCODE_CONTINUATION, b"z" * 10, fin=False) for _ in range(10)
    )
    assert decoder.feed(data) == []
    _raises_exactly(MessageTooLarge, decoder, client_frame(OPCODE_CONTINUATION, b"z", fin=True))


def fragmented(opcode: int, pieces: list[bytes]) -> bytes:
    """One message in len(pieces) frames."""
    return b"".join(
        client_frame(opcode if index == 0 else OPCODE_CONTINUATION, piece, fin=index == len(pieces) - 1)
        for index, piece in enumerate(pieces)
    )


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
def test_a_message_in_exactly_max_fragments_is_accepted(opcode: int) -> None:
    decoder = FrameDecoder(LARGE_LIMIT, max_fragments=4)
    assert decoder.feed(fragmented(opcode, [b"a", b"", b"b", b"c"])) == [
        (opcode, "abc" if opcode == OPCODE_TEXT else b"abc")
    ]


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
def test_one_fragment_more_is_too_large_from_its_header_even_when_empty(opcode: int) -> None:
    decoder = FrameDecoder(LARGE_LIMIT, max_fragments=4)
    data = fragmented(opcode, [b"a", b"", b"b", b"c"])[: -len(client_frame(OPCODE_CONTINUATION, b"c"))]
    data += client_frame(OPCODE_CONTINUATION, b"", fin=False)  # the fourth frame, not the last
    assert decoder.feed(data) == []
    _raises_exactly(MessageTooLarge, decoder, header_of(client_frame(OPCODE_CONTINUATION, b""))[:2])


def test_the_default_fragment_cap_stops_a_bomb_of_empty_continuations() -> None:
    bomb = client_frame(OPCODE_TEXT, b"{", fin=False) + client_frame(OPCODE_CONTINUATION, b"", fin=False) * 1000
    with pytest.raises(MessageTooLarge) as info:
        FrameDecoder(LARGE_LIMIT).feed(bomb)
    assert str(MAX_FRAGMENTS) in str(info.value)


class Admissions:
    """An `admit_frame` that admits `allowed` frames, then refuses every one; counts the calls."""

    def __init__(self, allowed: int):
        self.allowed = allowed
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls <= self.allowed


def test_every_frame_is_admitted_control_frames_and_fragments_included() -> None:
    admissions = Admissions(100)
    data = fragmented(OPCODE_TEXT, [b"a", b"b", b"c"]) + client_frame(OPCODE_PING, b"") + client_frame(OPCODE_PONG, b"")
    data += client_frame(OPCODE_BINARY, b"d")
    assert FrameDecoder(LARGE_LIMIT, admit_frame=admissions).feed(data) == [
        (OPCODE_TEXT, "abc"),
        (OPCODE_PING, b""),
        (OPCODE_PONG, b""),
        (OPCODE_BINARY, b"d"),
    ]
    assert admissions.calls == 6


def test_a_frame_refused_admission_raises_with_the_messages_before_it_and_is_not_decoded() -> None:
    admissions = Admissions(3)
    data = client_frame(OPCODE_PING, b"1") + client_frame(OPCODE_TEXT, "two") + client_frame(OPCODE_PING, b"3")
    data += client_frame(OPCODE_TEXT, "not valid \xff".encode("latin-1"))  # would be InvalidUtf8 if decoded
    with pytest.raises(FrameRateExceeded) as info:
        FrameDecoder(LARGE_LIMIT, admit_frame=admissions).feed(data)
    assert info.value.decoded == [(OPCODE_PING, b"1"), (OPCODE_TEXT, "two"), (OPCODE_PING, b"3")]
    assert admissions.calls == 4


def test_a_frame_arriving_byte_by_byte_is_admitted_once_from_its_header_on() -> None:
    admissions = Admissions(1)
    decoder = FrameDecoder(LARGE_LIMIT, admit_frame=admissions)
    frame = client_frame(OPCODE_TEXT, "x" * 300)
    header = 2 + 2 + 4  # 16-bit length and mask key: the payload is then taken as it arrives
    for index in range(len(frame) - 1):
        assert decoder.feed(frame[index : index + 1]) == []
        assert admissions.calls == (1 if index + 1 >= header else 0), index
    assert decoder.feed(frame[-1:]) == [(OPCODE_TEXT, "x" * 300)]
    assert admissions.calls == 1


def test_a_control_frame_arriving_byte_by_byte_is_admitted_once_when_it_is_whole() -> None:
    admissions = Admissions(1)
    decoder = FrameDecoder(LARGE_LIMIT, admit_frame=admissions)
    frame = client_frame(OPCODE_PING, b"p" * 100)
    for index in range(len(frame) - 1):
        assert decoder.feed(frame[index : index + 1]) == []
    assert admissions.calls == 0
    assert decoder.feed(frame[-1:]) == [(OPCODE_PING, b"p" * 100)]
    assert admissions.calls == 1


def test_a_large_frame_fed_in_small_pieces_is_appended_to_not_copied_whole_at_every_piece() -> None:
    decoder = FrameDecoder(LARGE_LIMIT)
    frame = client_frame(OPCODE_BINARY, pattern(65536))
    decoder.feed(frame[:100])
    pending = decoder._pending
    for start in range(100, len(frame) - 1, 100):
        decoder.feed(frame[start : min(start + 100, len(frame) - 1)])
    assert decoder._pending is pending  # one buffer grown in place: linear, where a copy per read was quadratic
    assert decoder.feed(frame[-1:]) == [(OPCODE_BINARY, pattern(65536))]


def test_the_limit_counts_bytes_not_characters() -> None:
    text = "\u20ac" * 34  # 102 bytes
    _raises_exactly(MessageTooLarge, FrameDecoder(100), client_frame(OPCODE_TEXT, text))
    assert FrameDecoder(102).feed(client_frame(OPCODE_TEXT, text)) == [(OPCODE_TEXT, text)]


def test_control_frames_are_not_subject_to_the_message_limit() -> None:
    assert FrameDecoder(10).feed(client_frame(OPCODE_PING, pattern(125))) == [(OPCODE_PING, pattern(125))]


# ---------------------------------------------------------------- UTF-8


INVALID_UTF8 = [
    pytest.param(b"\xff", id="ff"),
    pytest.param(b"abc\xc3", id="truncated-2-byte"),
    pytest.param(b"\xe2\x82", id="truncated-3-byte"),
    pytest.param(b"\xc0\xaf", id="overlong"),
    pytest.param(b"\xed\xa0\x80", id="surrogate"),
    pytest.param(b"\xf4\x90\x80\x80", id="above-10ffff"),
    pytest.param(b"\x80abc", id="lone-continuation"),
]


@pytest.mark.parametrize("payload", INVALID_UTF8)
def test_a_text_message_that_is_not_utf8_is_invalid_utf8(payload: bytes) -> None:
    _raises_exactly(InvalidUtf8, FrameDecoder(LARGE_LIMIT), client_frame(OPCODE_TEXT, payload))


def test_invalid_utf8_error_is_a_protocol_error() -> None:
    assert issubclass(InvalidUtf8, ProtocolError) and issubclass(MessageTooLarge, ProtocolError)


@pytest.mark.parametrize(
    "fragments",
    [
        pytest.param([b"\xe2\x82", b"\x28"], id="bad-continuation-split"),
        pytest.param([b"ok \xe2", b"\x82"], id="truncated-at-the-end"),
        pytest.param([b"\xf0\x9f", b"\x98", b"\xff"], id="split-in-three"),
        pytest.param([b"abc", b"\xed\xa0", b"\x80"], id="surrogate-split"),
        pytest.param([b"valid", b"\xff", b"valid"], id="invalid-middle-fragment"),
    ],
)
def test_invalid_utf8_split_across_fragments_is_invalid_utf8(fragments: list[bytes]) -> None:
    data = client_frame(OPCODE_TEXT, fragments[0], fin=False)
    for piece in fragments[1:-1]:
        data += client_frame(OPCODE_CONTINUATION, piece, fin=False)
    data += client_frame(OPCODE_CONTINUATION, fragments[-1])
    _raises_exactly(InvalidUtf8, FrameDecoder(LARGE_LIMIT), data)


@pytest.mark.parametrize("payload", INVALID_UTF8)
def test_binary_and_control_payloads_need_not_be_utf8(payload: bytes) -> None:
    data = (
        client_frame(OPCODE_BINARY, payload) + client_frame(OPCODE_PING, payload) + client_frame(OPCODE_PONG, payload)
    )
    assert FrameDecoder(LARGE_LIMIT).feed(data) == [
        (OPCODE_BINARY, payload),
        (OPCODE_PING, payload),
        (OPCODE_PONG, payload),
    ]


@PROPERTY_SETTINGS
@given(text=st.text(min_size=1, max_size=60), data=st.data())
def test_any_text_split_into_fragments_and_reads_at_any_byte_is_accepted(text: str, data: st.DataObject) -> None:
    raw = text.encode("utf-8")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6), label="cuts"))
    pieces = [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])]
    frames = client_frame(OPCODE_TEXT, pieces[0], fin=len(pieces) == 1)
    for index, piece in enumerate(pieces[1:], 1):
        frames += client_frame(OPCODE_CONTINUATION, piece, fin=index == len(pieces) - 1)
    assert FrameDecoder(LARGE_LIMIT).feed(frames) == [(OPCODE_TEXT, text)]
    reads = data.draw(st.lists(st.integers(0, len(frames)), max_size=10), label="reads")
    assert feed_in_chunks(FrameDecoder(LARGE_LIMIT), frames, reads) == [(OPCODE_TEXT, text)]


# ---------------------------------------------------------------- UTF-8 checked as it arrives (Autobahn 6.4)

VALID_START = "\u03ba\u1f79\u03c3\u03bc\u03b5".encode()  # the Greek word Autobahn's cases 6.4 start with
OUT_OF_RANGE = b"\xf4\x90\x80\x80"  # "U+110000" in UTF-8's scheme: invalid from its second byte on


@pytest.mark.parametrize("bad_fragment", [OUT_OF_RANGE, OUT_OF_RANGE[:2]], ids=["whole-sequence", "up-to-the-bad-byte"])
def test_invalid_utf8_fails_at_the_fragment_that_brings_it_not_at_the_end_of_the_message(bad_fragment: bytes) -> None:
    decoder = FrameDecoder(LARGE_LIMIT)
    assert decoder.feed(client_frame(OPCODE_TEXT, VALID_START, fin=False)) == []
    # no final fragment is ever sent
    _raises_exactly(InvalidUtf8, decoder, client_frame(OPCODE_CONTINUATION, bad_fragment, fin=False))


def _one_frame() -> tuple[bytes, int]:
    frame = client_frame(OPCODE_TEXT, VALID_START + OUT_OF_RANGE + b"edited")
    return frame, len(header_of(frame)) + len(VALID_START) + 1


def _three_fragments() -> tuple[bytes, int]:
    first = client_frame(OPCODE_TEXT, VALID_START, fin=False)
    second = client_frame(OPCODE_CONTINUATION, OUT_OF_RANGE, fin=False)
    return first + second + client_frame(OPCODE_CONTINUATION, b"edited"), len(first) + len(header_of(second)) + 1


@pytest.mark.parametrize("stream", [_one_frame, _three_fragments], ids=["one-frame", "three-fragments"])
def test_invalid_utf8_fails_at_the_read_that_brings_the_bad_byte(stream: Any) -> None:
    """Bytes arrive one read at a time: the error comes with the byte that makes the text invalid, even inside a
    frame whose end has not arrived (Autobahn 6.4.3 and 6.4.4 send one frame in three chops)."""
    data, bad_at = stream()
    decoder = FrameDecoder(LARGE_LIMIT)
    for index in range(bad_at):
        assert decoder.feed(data[index : index + 1]) == []
    _raises_exactly(InvalidUtf8, decoder, data[bad_at : bad_at + 1])


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 1000])
def test_multibyte_characters_split_by_fragments_and_reads_inside_frames_are_accepted(read_size: int) -> None:
    text = "a\u20ac\U0001f600\u00e9" * 50
    raw = text.encode("utf-8")
    data = b"".join(
        client_frame(OPCODE_TEXT if at == 0 else OPCODE_CONTINUATION, raw[at : at + 37], fin=at + 37 >= len(raw))
        for at in range(0, len(raw), 37)
    )
    cuts = list(range(read_size, len(data), read_size))
    assert feed_in_chunks(FrameDecoder(LARGE_LIMIT), data, cuts) == [(OPCODE_TEXT, text)]


def test_a_large_frame_taken_read_by_read_comes_out_once_whole() -> None:
    payload = pattern(300_000)
    frame = client_frame(OPCODE_BINARY, payload) + client_frame(OPCODE_PING, b"after")
    cuts = list(range(65536, len(frame), 65536))
    assert feed_in_chunks(FrameDecoder(LARGE_LIMIT), frame, cuts) == [(OPCODE_BINARY, payload), (OPCODE_PING, b"after")]


# ---------------------------------------------------------------- closing: only the peer's close matters

SMALL_LIMIT = 1000
CLOSE = client_frame(OPCODE_CLOSE, struct.pack("!H", 1002))
# every kind of frame a peer may send before its close reply, all of them skipped unchecked
SKIPPED_FRAMES = (
    client_frame(OPCODE_TEXT, b"\xff not UTF-8")
    + client_frame(OPCODE_BINARY, pattern(70_000))
    + client_frame(OPCODE_TEXT, "x", fin=False)
    + client_frame(OPCODE_PING, b"ping")
    + client_frame(OPCODE_PONG, b"", mask=None)
    + client_frame(OPCODE_TEXT, "reserved", rsv=0x40)
    + client_frame(0x3, b"unknown opcode")
    + client_frame(OPCODE_CONTINUATION, b"y")
)
# (a bad start that raises, the rest of the bad frame that arrives later)
TOO_LARGE = client_frame(OPCODE_BINARY, pattern(SMALL_LIMIT + 500))
INVALID_IN_ONE_FRAME = client_frame(OPCODE_TEXT, b"ok \xff and then more")
FAILURES = [
    pytest.param(client_frame(OPCODE_TEXT, "bad", rsv=0x40), b"", id="reserved-bit"),
    pytest.param(client_frame(OPCODE_TEXT, "bad", mask=None), b"", id="unmasked"),
    pytest.param(client_frame(OPCODE_PING, b"p" * 126), b"", id="ping-over-125"),
    pytest.param(TOO_LARGE[:20], TOO_LARGE[20:], id="too-large-from-its-header"),
    pytest.param(INVALID_IN_ONE_FRAME[:10], INVALID_IN_ONE_FRAME[10:], id="invalid-utf8-inside-a-frame"),
    pytest.param(
        client_frame(OPCODE_TEXT, VALID_START, fin=False) + client_frame(OPCODE_CONTINUATION, OUT_OF_RANGE, fin=False),
        client_frame(OPCODE_CONTINUATION, b"the rest"),
        id="invalid-utf8-in-a-fragment",
    ),
]


@pytest.mark.parametrize("read_size", [1, 5, 4096, 1 << 20])
@pytest.mark.parametrize(("bad", "rest"), FAILURES)
def test_after_an_error_only_the_peers_close_comes_out_past_any_frames(bad: bytes, rest: bytes, read_size: int) -> None:
    decoder = FrameDecoder(SMALL_LIMIT)
    with pytest.raises(ProtocolError):
        decoder.feed(bad)
    decoder.discard_until_close()
    later = rest + SKIPPED_FRAMES + CLOSE + client_frame(OPCODE_TEXT, "after the close")
    cuts = list(range(read_size, len(later), read_size))
    assert feed_in_chunks(decoder, later, cuts) == [(OPCODE_CLOSE, b"")]


def test_the_rest_of_the_read_that_failed_is_searched_for_the_close_on_the_next_feed() -> None:
    decoder = FrameDecoder(SMALL_LIMIT)
    with pytest.raises(ProtocolError):
        decoder.feed(client_frame(OPCODE_TEXT, "bad", rsv=0x40) + client_frame(OPCODE_PING, b"") + CLOSE)
    decoder.discard_until_close()
    assert decoder.feed(b"") == [(OPCODE_CLOSE, b"")]


@pytest.mark.parametrize(
    "close",
    [CLOSE, client_frame(OPCODE_CLOSE, b"x" * 300), client_frame(OPCODE_CLOSE, b"\x03")],
    ids=["1002", "over-125-bytes", "one-byte"],
)
def test_when_closing_a_close_frame_of_any_size_or_content_ends_it_from_its_first_two_bytes(close: bytes) -> None:
    """Whatever the peer's close says, it answers ours: even a malformed or oversized one ends the connection."""
    decoder = FrameDecoder(SMALL_LIMIT)
    decoder.discard_until_close()
    assert decoder.feed(close[:1]) == []
    assert decoder.feed(close[1:2]) == [(OPCODE_CLOSE, b"")]


def test_up_to_the_cap_of_frames_before_the_peers_close_are_skipped() -> None:
    decoder = FrameDecoder(SMALL_LIMIT)
    decoder.discard_until_close()
    pings = client_frame(OPCODE_PING, b"", mask=None) * (MAX_FRAMES_BEFORE_CLOSE - 1)
    assert feed_in_chunks(decoder, pings + CLOSE, [len(pings) // 2]) == [(OPCODE_CLOSE, b"")]


def test_a_peer_that_sends_more_frames_than_the_cap_before_its_close_is_not_parsed_any_further() -> None:
    """Skipping costs a little per frame: past the cap, bytes are dropped unparsed until TCP is cut."""
    decoder = FrameDecoder(SMALL_LIMIT)
    decoder.discard_until_close()
    pings = client_frame(OPCODE_PING, b"", mask=None) * MAX_FRAMES_BEFORE_CLOSE
    assert feed_in_chunks(decoder, pings + CLOSE, [len(pings) // 2]) == []
    assert decoder.feed(CLOSE) == []


def test_closing_drops_a_message_in_progress_and_skips_its_remaining_fragments() -> None:
    decoder = FrameDecoder(SMALL_LIMIT)
    arriving = client_frame(OPCODE_CONTINUATION, b"z" * 900, fin=False)
    assert decoder.feed(client_frame(OPCODE_TEXT, "start", fin=False) + arriving[:300]) == []
    decoder.discard_until_close()
    later = arriving[300:] + client_frame(OPCODE_CONTINUATION, "end") + CLOSE
    assert decoder.feed(later) == [(OPCODE_CLOSE, b"")]


# ---------------------------------------------------------------- parse_close


def test_an_empty_close_payload_is_1005() -> None:
    assert parse_close(b"") == 1005


def test_a_one_byte_close_payload_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_close(b"\x03")
    assert type(info.value) is ProtocolError


@pytest.mark.parametrize("code", [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])
def test_an_invalid_close_code_is_a_protocol_error(code: int) -> None:
    for payload in (struct.pack("!H", code), struct.pack("!H", code) + b"reason"):
        with pytest.raises(ProtocolError) as info:
            parse_close(payload)
        assert type(info.value) is ProtocolError


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999]
)
def test_a_valid_close_code_is_returned(code: int) -> None:
    assert parse_close(struct.pack("!H", code)) == code
    assert parse_close(struct.pack("!H", code) + "bye \u20ac".encode()) == code
    assert parse_close(struct.pack("!H", code) + b"r" * MAX_CLOSE_REASON_BYTES) == code


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf"])
def test_a_close_reason_that_is_not_utf8_is_invalid_utf8(reason: bytes) -> None:
    with pytest.raises(InvalidUtf8):
        parse_close(struct.pack("!H", 1000) + reason)


# ---------------------------------------------------------------- encode_frame


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
def test_encode_frame_uses_the_shortest_length_form_and_no_mask(opcode: int, size: int) -> None:
    payload = pattern(size)
    frame = encode_frame(opcode, payload)
    assert frame[0] == 0x80 | opcode  # FIN, no reserved bits
    assert frame[1] == length_form(size)  # no mask bit
    extra = {126: 2, 127: 8}.get(length_form(size), 0)
    if extra:
        assert int.from_bytes(frame[2 : 2 + extra], "big") == size
    assert frame[2 + extra :] == payload


@pytest.mark.parametrize("size", SIZES)
def test_encode_frame_round_trips_through_the_decoder(size: int) -> None:
    payload = pattern(size)
    text = ("\u20ac" * (size // 3 + 1))[: size // 3]
    decoder = FrameDecoder(LARGE_LIMIT)
    assert decoder.feed(mask_server_frame(encode_frame(OPCODE_BINARY, payload))) == [(OPCODE_BINARY, payload)]
    assert decoder.feed(mask_server_frame(encode_frame(OPCODE_TEXT, text.encode()))) == [(OPCODE_TEXT, text)]


@PROPERTY_SETTINGS
@given(
    opcode=st.sampled_from([OPCODE_PING, OPCODE_PONG, OPCODE_CLOSE, OPCODE_BINARY]),
    payload=st.binary(max_size=MAX_CONTROL_PAYLOAD),
    mask=st.binary(min_size=4, max_size=4),
)
def test_any_frame_encode_frame_builds_decodes_to_what_was_encoded(opcode: int, payload: bytes, mask: bytes) -> None:
    frame = encode_frame(opcode, payload)
    assert mask_server_frame(frame, mask) == client_frame(opcode, payload, mask=mask)
    assert FrameDecoder(LARGE_LIMIT).feed(mask_server_frame(frame, mask)) == [(opcode, payload)]


# ---------------------------------------------------------------- close_payload


def test_close_payload_is_the_code_then_the_reason() -> None:
    assert close_payload(1000, "") == b"\x03\xe8"
    assert close_payload(1001, "server shutting down") == b"\x03\xe9server shutting down"
    assert close_payload(4401, "\u20ac") == struct.pack("!H", 4401) + "\u20ac".encode()


def test_close_payload_truncates_without_splitting_a_character() -> None:
    assert close_payload(1000, "a" * 200) == b"\x03\xe8" + b"a" * 123
    assert close_payload(1000, "\u00e9" * 100) == b"\x03\xe8" + "\u00e9".encode() * 61  # 122 bytes
    assert close_payload(1000, "a" + "\u20ac" * 50) == b"\x03\xe8" + b"a" + "\u20ac".encode() * 40  # 121 bytes
    assert close_payload(1000, "ab" + "\U0001f600" * 40) == b"\x03\xe8" + b"ab" + "\U0001f600".encode() * 30  # 122


@PROPERTY_SETTINGS
@given(
    code=st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1013, 3000, 4401, 4999]),
    reason=st.text(max_size=200),
)
def test_close_payload_is_the_longest_prefix_of_the_reason_that_fits(code: int, reason: str) -> None:
    payload = close_payload(code, reason)
    assert len(payload) <= MAX_CONTROL_PAYLOAD
    assert payload[:2] == struct.pack("!H", code)
    kept = payload[2:].decode("utf-8")  # never a split character
    assert reason.startswith(kept)
    if kept != reason:
        # not one more character would have fitted
        assert len(reason[: len(kept) + 1].encode("utf-8")) > MAX_CLOSE_REASON_BYTES
    # a close frame carrying it is valid, and the decoder and parse_close accept it
    frame = mask_server_frame(encode_frame(OPCODE_CLOSE, payload))
    assert FrameDecoder(LARGE_LIMIT).feed(frame) == [(OPCODE_CLOSE, payload)]
    assert parse_close(payload) == code


# ---------------------------------------------------------------- messages before an error


def decode_until_error(data: bytes, cuts: list[int]) -> list[tuple[int, str | bytes]]:
    """Every message the decoder hands out for `data` fed in chunks, up to the first ProtocolError."""
    decoder = FrameDecoder(LARGE_LIMIT)
    messages: list[tuple[int, str | bytes]] = []
    start = 0
    try:
        for cut in sorted(set(cuts)) + [len(data)]:
            messages.extend(decoder.feed(data[start:cut]))
            start = cut
    except ProtocolError as error:
        messages.extend(error.decoded)
    return messages


def test_a_message_fed_before_the_bad_frame_is_handed_out() -> None:
    good, bad = client_frame(OPCODE_TEXT, "good"), client_frame(OPCODE_TEXT, "bad", rsv=0x40)
    assert decode_until_error(good + bad, [len(good)]) == [(OPCODE_TEXT, "good")]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(client_frame(OPCODE_TEXT, "bad", rsv=0x40), id="reserved-bit"),
        pytest.param(client_frame(OPCODE_TEXT, "bad", mask=None), id="unmasked"),
        pytest.param(client_frame(OPCODE_TEXT, b"\xff"), id="invalid-utf8"),
        pytest.param(client_frame(OPCODE_TEXT, b"", length=LARGE_LIMIT + 1), id="too-large"),
    ],
)
def test_messages_before_a_bad_frame_do_not_depend_on_how_the_bytes_were_read(bad: bytes) -> None:
    good = client_frame(OPCODE_TEXT, "good") + client_frame(OPCODE_PING, b"p")
    stream = good + bad
    results = {cut: decode_until_error(stream, [cut]) for cut in range(len(stream) + 1)}
    assert results[len(good)] == [(OPCODE_TEXT, "good"), (OPCODE_PING, b"p")]
    assert {cut: r for cut, r in results.items() if r != results[len(good)]} == {}
