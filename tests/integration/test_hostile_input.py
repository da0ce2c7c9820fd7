"""Hostile input over real sockets: thousands of random and malformed frames, from several users at once.

Six authenticated users each send 600 frames built from a seeded `random.Random`
(the seed is in every assertion message; set `HOSTILE_SEED` to replay another):
text that is not JSON, truncated and deeply nested JSON, JSON that is not an
object, absurd numbers, wrong field types and nulls for every frame type of the
contract, unknown types, SQL-looking strings, control characters, lone
surrogates, frames just under the 64 KiB limit. Each frame must be answered by
one `error` frame with the code the contract gives it (and a `ref` naming the
offending frame where one can be named), the socket must stay open and answer a
`ping` afterwards, and nothing of it may be stored or pushed. Meanwhile two
other users chat, and frames that close a socket by design (binary, invalid
UTF-8, over 64 KiB) go to throwaway sockets, without disturbing anyone.

A second test sends tricky but valid contents and checks that the recipient
and `history` get each one back exactly as it was sent.
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from protocol.frames import MAX_REF_TYPE_CHARS
from tests.helpers.chat import MAX_CONTENT, MAX_FRAME, assert_service_works, history, message_frames
from tests.helpers.client import Client
from tests.helpers.server import SCRIPTED_CLIENT_LIMITS, ServerFactory, ServerProcess
from tests.helpers.wire import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_CONTINUATION,
    OPCODE_TEXT,
    RawSocket,
    client_frame,
)

SEED = int(os.environ.get("HOSTILE_SEED", "20261126"))
FLOODERS = 6
FRAMES_PER_FLOODER = 600
WINDOW = 50  # frames sent before their errors are read
CHAT_MESSAGES = 40  # each way, while the flood runs
TIMEOUT = 20.0

BAD, TOO_LARGE, NOT_FOUND = "bad_request", "too_large", "not_found"
FORBIDDEN, UNAUTHORIZED = "forbidden", "unauthorized"
KNOWN_TYPES = {"connect", "message", "message_read", "history", "notifications", "notification_read", "ping"}


class _Any:
    """In an expectation: this part of the error's `ref` is not checked (the contract leaves it open)."""

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()


@dataclass(frozen=True)
class Hostile:
    """A frame to send as is, and the error it must get: `code`, `ref.type` and `ref.clientMsgId`.

    `ref_type` None: the frame has no readable type, so `ref` names none. `cmid` None: `ref` has no clientMsgId.
    A type is echoed cut to `MAX_REF_TYPE_CHARS`.
    """

    label: str
    text: str
    code: str
    ref_type: Any = None
    cmid: Any = None

    def matches(self, error: dict[str, Any]) -> bool:
        ref = error.get("ref") or {}
        return (
            error.get("code") == self.code
            and (self.ref_type is ANY or ref.get("type") == _cut(self.ref_type))
            and (self.cmid is ANY or ref.get("clientMsgId") == self.cmid)
        )


def _cut(frame_type: Any) -> Any:
    return frame_type[:MAX_REF_TYPE_CHARS] if isinstance(frame_type, str) else frame_type


# ---------------------------------------------------------------- building blocks

SQL = [
    "'; DROP TABLE users; --",
    "1 OR 1=1",
    "' OR '1'='1",
    "1; DELETE FROM realtime_messages; --",
    '" OR ""="',
    "admin'--",
    "1' UNION SELECT id, username FROM users --",
    "%s",
    "%(content)s %d %%",
    "?",
    ":id",
    "$1",
    "\\'; --",
    "`users`",
]
ODD_TEXT = [
    "\u202eevil\u202c",
    "\u05e9\u05dc\u05d5\u05dd",
    "\u0645\u0631\u062d\u0628\u0627",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f600",
    "\U0001d573\U0001d58a",
    "a\u200db",
    "\u200b",
    "\ufeff",
    "\u0000",
    "\u0001\u001f\u007f",
    "\u0085\u009f",
    "\ufffd",
    "\uffff",
    "\U0010ffff",
    "e\u0301",
    "\u2028\u2029",
    "\t\n\r",
    "\\",
    '"',
    "'",
    "`",
    "{}",
    "]}",
    "<script>alert(1)</script>",
    "null",
]
LONE_SURROGATES = ["\ud800", "\udc00", "a\ud800b", "\ude00\ud83d", "x\udbff"]
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000, "-" + "9" * 5000]
NON_FINITE_NOT_HUGE = [raw for raw in NON_FINITE if raw != "9" * 5000]  # a huge limit may be capped, not refused
# JSON text of ids that are not positive integers within int64: refused with bad_request whatever the field
BAD_ID_RAW = ["-0", "-0.0", "0", "-1", "1.5", "1e2", "1.0", "true", "false", "null", "[]", "{}", '""',
              str(2**63), str(2**64), str(-(2**63)), '"1"', '"1 OR 1=1"', '"\'; DROP TABLE users; --"']


def random_text(rng: random.Random, max_pieces: int = 6) -> str:
    """A string of SQL-looking, odd Unicode and plain pieces (no lone surrogates)."""
    pieces = []
    for _ in range(rng.randint(1, max_pieces)):
        kind = rng.random()
        if kind < 0.3:
            pieces.append(rng.choice(SQL))
        elif kind < 0.6:
            pieces.append(rng.choice(ODD_TEXT))
        else:
            letters = "abcdefghijklmnopqrstuvwxyz0123456789 _-"
            pieces.append("".join(rng.choice(letters) for _ in range(rng.randint(1, 12))))
    return "".join(pieces)


def random_chars(rng: random.Random, count: int) -> str:
    """`count` random characters from all planes, control characters included, surrogates excluded."""
    out = []
    for _ in range(count):
        band = rng.random()
        if band < 0.5:
            code = rng.randrange(0x20, 0x7F)
        elif band < 0.65:
            code = rng.randrange(0x00, 0x20)
        elif band < 0.85:
            code = rng.randrange(0x80, 0xD800)
        elif band < 0.95:
            code = rng.randrange(0xE000, 0x10000)
        else:
            code = rng.randrange(0x10000, 0x110000)
        out.append(chr(code))
    return "".join(out)


def dumps(rng: random.Random, frame: Any) -> str:
    """JSON text, with non-ASCII escaped or raw at random (always escaped if a lone surrogate is in it)."""
    try:
        text = json.dumps(frame, ensure_ascii=rng.random() < 0.5)
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(frame)


def with_raw(rng: random.Random, frame: dict[str, Any], field: str, raw: str) -> str:
    """The JSON text of `frame` with `field` set to the JSON text `raw`, which may be no valid JSON value."""
    marker = "__raw_value_marker__"
    text = dumps(rng, {**frame, field: marker})
    return text.replace(json.dumps(marker), raw, 1)


def nested(depth: int, kind: str) -> str:
    if kind == "open-arrays":
        return "[" * depth
    if kind == "arrays":
        return "[" * depth + "]" * depth
    if kind == "objects":
        return '{"a":' * depth + "1" + "}" * depth
    return '[{"x":' * (depth // 2) + "0" + "}]" * (depth // 2)


class HostileFrames:
    """Deterministic hostile frames for one sender; every one must be refused."""

    def __init__(self, rng: random.Random, ctx: dict[str, Any], tag: str):
        self.rng = rng
        self.ctx = ctx
        self.tag = tag
        self.count = 0
        self.generators: list[tuple[float, Callable[[], Hostile]]] = [
            (6, self.garbage),
            (6, self.truncated),
            (6, self.not_json),
            (2, self.deep),
            (6, self.not_an_object),
            (6, self.no_string_type),
            (10, self.unknown_type),
            (16, self.bad_message),
            (4, self.message_to_nobody),
            (6, self.bad_message_read),
            (2, self.message_read_not_found_or_forbidden),
            (6, self.bad_history),
            (4, self.bad_notifications),
            (6, self.bad_notification_read),
            (2, self.notification_read_not_found),
            (6, self.bad_connect),
            (2, self.huge),
        ]
        self.weights = [weight for weight, _ in self.generators]

    def next(self) -> Hostile:
        self.count += 1
        (make,) = self.rng.choices([g for _, g in self.generators], self.weights)
        return make()

    # ------------------------------------------------------------ helpers

    def cmid(self) -> str:
        """A valid clientMsgId, unique for this sender, sometimes with SQL or odd Unicode in it."""
        base = f"{self.tag}-{self.count}"
        if self.rng.random() < 0.5:
            suffix = self.rng.choice(SQL + [t for t in ODD_TEXT if t.strip()])
            candidate = f"{base} {suffix}"
            if len(candidate) <= 64:
                return candidate
        return base

    def content(self) -> str:
        return "hostile " + random_text(self.rng)

    def message_base(self, with_cmid: bool | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "message", "to": self.ctx["victim"], "content": self.content()}
        if with_cmid if with_cmid is not None else self.rng.random() < 0.7:
            frame["clientMsgId"] = self.cmid()
        return frame

    def valid_frame_text(self) -> str:
        ctx, rng = self.ctx, self.rng
        frame = rng.choice(
            [
                {"type": "ping"},
                self.message_base(with_cmid=True),
                {"type": "history", "with": ctx["victim"], "limit": 10},
                {"type": "notifications", "limit": 5},
                {"type": "notification_read", "all": True},
                {"type": "message_read", "messageId": ctx["setup_message"]},
                {"type": "connect", "userId": ctx["self"], "token": ctx["own_token"]},
            ]
        )
        return dumps(rng, frame)

    # ------------------------------------------------------------ not JSON

    def garbage(self) -> Hostile:
        # never starts like an object (or with whitespace before one), so it can only be refused
        first = self.rng.choice("xyz#@!<>?~|\\'")
        return Hostile("garbage", first + random_chars(self.rng, self.rng.randint(0, 300)), BAD)

    def truncated(self) -> Hostile:
        text = self.valid_frame_text()
        return Hostile("truncated", text[: self.rng.randrange(1, len(text))], BAD)

    def not_json(self) -> Hostile:
        victim = self.ctx["victim"]
        to = '{"type": "message", "to": ' + str(victim)
        text = self.rng.choice(
            [
                "{'type': 'ping'}",
                '{"type": "ping",}',
                '{"type": "ping"} // comment',
                '{"type": "ping"}{"type": "ping"}',
                '{"type": "ping"}]',
                '{"type": "ping"} x',
                '{type: "ping"}',
                '{"type": "ping\x01"}',  # a raw control character inside a string
                to + ', "content": "a\x00b"}',  # a raw NUL inside a string
                to + ', "content": "tab\there"}',  # a raw tab inside a string
                to + ', "content": "line\nbreak"}',
                '{"type": "bogus\\x41"}',  # not a JSON escape
                '{"type": "\\u12"}',  # a short \u escape
                '{"type": "ping"}\x00',
                '{"type": "message", "to": ' + hex(victim) + ', "content": "hex"}',
                '{"type": "message", "to": +' + str(victim) + ', "content": "plus"}',
                '{"type": "history", "with": ' + str(victim) + ', "limit": .5}',
                '{"type" "ping"}',
                '{"type": ping}',
                '{"type": "ping", "x": undefined}',
                "{" + random_text(self.rng),
                "\x00",
                "\x1b[31m",
            ]
        )
        return Hostile("not-json", text, BAD)

    def deep(self) -> Hostile:
        depth = self.rng.choice([2000, 10_000, 10_000])
        kind = self.rng.choice(["open-arrays", "arrays", "objects", "mixed"])
        choice = self.rng.random()
        if choice < 0.5:
            return Hostile(f"deep-{kind}", nested(depth, kind), BAD)
        if choice < 0.75:
            # an object whose type is not a string: refused however deep the parser can go
            return Hostile(f"deep-{kind}-in-untyped-object", '{"type": 7, "x": ' + nested(depth, kind) + "}", BAD)
        # with a type: refused as unparseable (no ref) or as a content that is not a string (ref names it)
        text = '{"type": "message", "to": ' + str(self.ctx["victim"]) + ', "content": ' + nested(depth, kind) + "}"
        return Hostile(f"deep-{kind}-as-content", text, BAD, ANY, None)

    # ------------------------------------------------------------ JSON, but not an object with a string type

    def not_an_object(self) -> Hostile:
        rng = self.rng
        text = rng.choice(
            [
                "[]",
                '[{"type": "ping"}]',
                '"ping"',
                json.dumps(json.dumps({"type": "ping"})),
                "42",
                "-0",
                "0",
                "01",
                "1.5",
                "1e2",
                "true",
                "false",
                "null",
                "",
                "   ",
                "\n",
                "0." + "0" * 5000 + "1",
                "1" + "0" * 5000 + ".5",
                rng.choice(NON_FINITE),
                dumps(rng, [random_text(rng), rng.randint(-10, 10), None, {"type": "ping"}]),
                dumps(rng, random_text(rng)),
            ]
        )
        return Hostile("not-an-object", text, BAD)

    def no_string_type(self) -> Hostile:
        rng = self.rng
        victim = self.ctx["victim"]
        choice = rng.random()
        if choice < 0.4:
            value = rng.choice([None, 7, 0, -1, 1.5, True, False, [], ["ping"], {"type": "ping"}, 2**70, {}])
            return Hostile("type-not-a-string", dumps(rng, {"type": value, "to": victim, "content": "hi"}), BAD)
        if choice < 0.6:
            raw = rng.choice(NON_FINITE + ["-0"])
            return Hostile("type-raw-number", with_raw(rng, {"to": victim}, "type", raw), BAD)
        key = rng.choice(["TYPE", "Type", " type", "type ", "typ", "types", "kind", "\u0074\u200bype"])
        frame = {key: rng.choice(["ping", "message"]), "to": victim, "content": "hi"}
        if rng.random() < 0.3:
            frame = {}
        return Hostile("no-type", dumps(rng, frame), BAD)

    def unknown_type(self) -> Hostile:
        rng = self.rng
        choice = rng.random()
        if choice < 0.1:
            frame_type = rng.choice(LONE_SURROGATES) + rng.choice(["", "ping", "message"])
            # a type that cannot be sent back as UTF-8: the contract leaves open whether ref names it
            return Hostile("type-lone-surrogate", json.dumps({"type": frame_type}), BAD, ANY, None)
        if choice < 0.5:
            frame_type = rng.choice(
                [
                    "PING", "Ping", "ping ", " ping", "ping\u0000", "pin\u200bg", "p\u0456ng", "\ufeffping", "pong",
                    "message_sent", "connected", "error", "history\n", "Message", "MESSAGE", "notification",
                    "message-read", "messageRead", "read", "", " ", "__proto__", "constructor", "toString",
                    "message\u0000", "\u202eping", "null", "undefined", "0", "ping\\", "ping\"",
                ]
            )
        else:
            frame_type = random_text(rng)
        if frame_type in KNOWN_TYPES:
            frame_type += "?"
        frame: dict[str, Any] = {"type": frame_type}
        if rng.random() < 0.5:
            frame.update(self.message_base(with_cmid=False))
            frame["type"] = frame_type
        cmid = None
        if rng.random() < 0.4:
            cmid = frame["clientMsgId"] = self.cmid()
        return Hostile("unknown-type", dumps(rng, frame), BAD, frame_type, cmid)

    # ------------------------------------------------------------ wrong fields, frame type by frame type

    def bad_message(self) -> Hostile:
        rng = self.rng
        frame = self.message_base()
        cmid = frame.get("clientMsgId")
        field = rng.choice(["to", "to", "content", "content", "content", "clientMsgId"])
        if field == "to":
            choice = rng.random()
            if choice < 0.15:
                del frame["to"]
                return Hostile("message-to-missing", dumps(rng, frame), BAD, "message", cmid)
            if choice < 0.3:
                # not valid JSON for a strict parser; a number that is no id for a lenient one
                text = with_raw(rng, frame, "to", rng.choice(NON_FINITE))
                return Hostile("message-to-non-finite", text, BAD, ANY, ANY)
            if choice < 0.6:
                text = with_raw(rng, frame, "to", rng.choice(BAD_ID_RAW))
                return Hostile("message-to-raw", text, BAD, "message", cmid)
            frame["to"] = rng.choice(
                [None, str(self.ctx["victim"]), rng.choice(SQL), self.ctx["victim"] + 0.5, float(self.ctx["victim"]),
                 [self.ctx["victim"]], {"id": self.ctx["victim"]}, -self.ctx["victim"], "", True, 2**63]
            )
            return Hostile("message-to-wrong-type", dumps(rng, frame), BAD, "message", cmid)
        if field == "content":
            choice = rng.random()
            if choice < 0.1:
                del frame["content"]
                return Hostile("message-content-missing", dumps(rng, frame), BAD, "message", cmid)
            if choice < 0.35:
                frame["content"] = rng.choice(
                    [None, 0, -0.0, 123, 1.5, True, False, [], ["hi"], {}, {"text": "hi"}, 2**70]
                )
                return Hostile("message-content-wrong-type", dumps(rng, frame), BAD, "message", cmid)
            if choice < 0.45:
                return Hostile("message-content-non-finite", with_raw(rng, frame, "content", rng.choice(NON_FINITE)),
                               BAD, ANY, ANY)
            if choice < 0.6:
                frame["content"] = rng.choice(["", " ", "\t\n\r ", "\u00a0", " \u3000 ", "\n" * 50, " " * 3999])
                return Hostile("message-content-blank", dumps(rng, frame), BAD, "message", cmid)
            if choice < 0.75:
                frame["content"] = random_text(rng, 2) + rng.choice(LONE_SURROGATES) + random_text(rng, 2)
                return Hostile("message-content-lone-surrogate", json.dumps(frame), BAD, "message", cmid)
            # over the limit of 4,000 characters, and still well inside one frame
            unit = rng.choice(["x", "\u00e9", "\u20ac", "\U0001f600", "'; DROP TABLE users; --"])
            length = MAX_CONTENT + rng.choice([1, 2, 100, 1000, 4000, 10_000])
            frame["content"] = (unit * length)[:length]
            text = dumps(rng, frame)
            if len(text.encode()) > MAX_FRAME:  # escaped astral characters take 12 bytes each
                frame["content"] = (unit * (MAX_CONTENT + 1))[: MAX_CONTENT + 1]
                text = dumps(rng, frame)
            return Hostile("message-content-too-long", text, TOO_LARGE, "message", cmid)
        # an invalid clientMsgId: whether ref still echoes it is left open by the contract
        frame["clientMsgId"] = rng.choice(
            [0, 12, 1.5, True, False, [], ["a"], {"a": 1}, "", " ", "\t\n", "k" * 65, "\U0001f600" * 65,
             "id" + rng.choice(LONE_SURROGATES)]
        )
        return Hostile("message-cmid-invalid", json.dumps(frame), BAD, "message", ANY)

    def message_to_nobody(self) -> Hostile:
        frame = self.message_base()
        frame["to"] = self.rng.choice([2**63 - 1, 2**62 + self.rng.randrange(2**40), self.ctx["victim"] + 10**12])
        return Hostile("message-to-nobody", dumps(self.rng, frame), NOT_FOUND, "message", frame.get("clientMsgId"))

    def bad_message_read(self) -> Hostile:
        rng = self.rng
        choice = rng.random()
        if choice < 0.15:
            return Hostile("read-missing", dumps(rng, {"type": "message_read"}), BAD, "message_read")
        if choice < 0.3:
            text = with_raw(rng, {"type": "message_read"}, "messageId", rng.choice(NON_FINITE))
            return Hostile("read-non-finite", text, BAD, ANY)
        if choice < 0.65:
            return Hostile("read-raw", with_raw(rng, {"type": "message_read"}, "messageId", rng.choice(BAD_ID_RAW)),
                           BAD, "message_read")
        value = rng.choice([None, "1", rng.choice(SQL), str(self.ctx["setup_message"]), [1], {"id": 1}, -5, 2**63, 0.5])
        return Hostile("read-wrong-type", dumps(rng, {"type": "message_read", "messageId": value}), BAD, "message_read")

    def message_read_not_found_or_forbidden(self) -> Hostile:
        if self.rng.random() < 0.5:
            # a real message between two other users: only its recipient may mark it read
            frame = {"type": "message_read", "messageId": self.ctx["setup_message"]}
            return Hostile("read-someone-elses", dumps(self.rng, frame), FORBIDDEN, "message_read")
        missing = self.rng.choice([2**63 - 1, 2**62 + self.rng.randrange(2**40)])
        return Hostile("read-missing-message", dumps(self.rng, {"type": "message_read", "messageId": missing}),
                       NOT_FOUND, "message_read")

    def bad_history(self) -> Hostile:
        rng = self.rng
        frame: dict[str, Any] = {"type": "history", "with": self.ctx["victim"]}
        field = rng.choice(["with", "with", "limit", "before"])
        choice = rng.random()
        if field == "with" and choice < 0.15:
            del frame["with"]
            return Hostile("history-with-missing", dumps(rng, frame), BAD, "history")
        if choice < 0.25:
            raw = rng.choice(NON_FINITE if field != "limit" else NON_FINITE_NOT_HUGE)
            return Hostile(f"history-{field}-non-finite", with_raw(rng, frame, field, raw), BAD, ANY)
        if choice < 0.6:
            raws = BAD_ID_RAW
            if field == "limit":  # a limit over the maximum is capped, not refused
                raws = [r for r in raws if r not in (str(2**63), str(2**64))]
            if field != "with":
                raws = [r for r in raws if r != "null"]  # an absent or null limit or before is the default
            return Hostile(f"history-{field}-raw", with_raw(rng, frame, field, rng.choice(raws)), BAD, "history")
        values: list[Any] = ["10", rng.choice(SQL), 2.5, True, [], {"n": 1}, -1, 0]
        if field == "with":
            values += [None, 2**63]
        if field == "before":
            values += [2**63]
        frame[field] = rng.choice(values)
        return Hostile(f"history-{field}-wrong-type", dumps(rng, frame), BAD, "history")

    def bad_notifications(self) -> Hostile:
        rng = self.rng
        frame: dict[str, Any] = {"type": "notifications"}
        field = rng.choice(["limit", "before"])
        choice = rng.random()
        if choice < 0.2:
            raw = rng.choice(NON_FINITE if field != "limit" else NON_FINITE_NOT_HUGE)
            return Hostile(f"notifications-{field}-non-finite", with_raw(rng, frame, field, raw), BAD, ANY)
        if choice < 0.6:
            raws = [r for r in BAD_ID_RAW if r != "null"]
            if field == "limit":
                raws = [r for r in raws if r not in (str(2**63), str(2**64))]
            return Hostile(f"notifications-{field}-raw", with_raw(rng, frame, field, rng.choice(raws)), BAD,
                           "notifications")
        values: list[Any] = ["5", rng.choice(SQL), 2.5, True, False, [], {"n": 1}, -1, 0]
        if field == "before":
            values.append(2**63)
        frame[field] = rng.choice(values)
        return Hostile(f"notifications-{field}-wrong-type", dumps(rng, frame), BAD, "notifications")

    def bad_notification_read(self) -> Hostile:
        rng = self.rng
        choice = rng.random()
        if choice < 0.2:
            frame: dict[str, Any] = rng.choice(
                [{}, {"all": None}, {"notificationId": None}, {"all": None, "notificationId": None}, {"all": False}]
            )
            return Hostile("notification-read-nothing", dumps(rng, {"type": "notification_read", **frame}), BAD,
                           "notification_read")
        if choice < 0.45:
            value = rng.choice(["true", 1, "yes", [], [True], {}, {"all": True}, 1.0, rng.choice(SQL)])
            return Hostile("notification-read-all-wrong-type",
                           dumps(rng, {"type": "notification_read", "all": value}), BAD, "notification_read")
        if choice < 0.6:
            return Hostile("notification-read-id-non-finite",
                           with_raw(rng, {"type": "notification_read"}, "notificationId", rng.choice(NON_FINITE)),
                           BAD, ANY)
        if choice < 0.8:
            return Hostile("notification-read-id-raw",
                           with_raw(rng, {"type": "notification_read"}, "notificationId", rng.choice(BAD_ID_RAW)),
                           BAD, "notification_read")
        value = rng.choice(["3", rng.choice(SQL), 1.5, True, [3], {"id": 3}, -3, 0, 2**63])
        return Hostile("notification-read-id-wrong-type",
                       dumps(rng, {"type": "notification_read", "notificationId": value}), BAD, "notification_read")

    def notification_read_not_found(self) -> Hostile:
        missing = self.rng.choice([2**63 - 1, 2**62 + self.rng.randrange(2**40)])
        text = dumps(self.rng, {"type": "notification_read", "notificationId": missing})
        return Hostile("notification-read-missing", text, NOT_FOUND, "notification_read")

    def bad_connect(self) -> Hostile:
        """A `connect` on an authenticated socket that does not prove this user: unauthorized, socket stays open."""
        rng, ctx = self.rng, self.ctx
        tokens: list[Any] = [ctx["victim_token"], ctx["expired_token"], "not.a.jwt", "", rng.choice(SQL),
                             ctx["own_token"].rsplit(".", 1)[0] + ".not-the-signature", None, 42, [ctx["own_token"]],
                             {"t": 1}, True, "abc\ud800"]
        user_ids: list[Any] = [ctx["self"], ctx["victim"], str(ctx["self"]), rng.choice(SQL), None, [ctx["self"]],
                               {"id": 1}, 1.5, -1, 0, True, "", 2**63]
        frame: dict[str, Any] = {"type": "connect", "userId": rng.choice(user_ids), "token": rng.choice(tokens)}
        if rng.random() < 0.15:
            del frame["token"]
        if rng.random() < 0.15:
            del frame["userId"]
        return Hostile("connect-not-proving-this-user", dumps(rng, frame), UNAUTHORIZED, "connect")

    # ------------------------------------------------------------ frames just under the 64 KiB frame limit

    def huge(self) -> Hostile:
        rng = self.rng
        size = rng.randint(MAX_FRAME - 2000, MAX_FRAME)

        def pad(head: str, tail: str, unit: str = "p") -> str:
            room = size - len(head.encode()) - len(tail.encode())
            text = head + unit * (room // len(unit.encode())) + tail
            assert len(text.encode()) <= MAX_FRAME
            return text

        kind = rng.choice(["unknown-type", "invalid-json", "content", "content-multibyte", "array", "type"])
        if kind == "unknown-type":
            return Hostile("huge-unknown-type", pad('{"type": "bogus-huge", "pad": "', '"}'), BAD, "bogus-huge")
        if kind == "invalid-json":
            return Hostile("huge-invalid-json", pad('{"type": "ping", "pad": "', ""), BAD)
        if kind == "array":
            return Hostile("huge-array", pad("[", "1]", "1,"), BAD)
        if kind == "type":
            text = pad('{"type": "', '"}', "t")
            return Hostile("huge-type", text, BAD, json.loads(text)["type"])
        cmid = self.cmid()
        head = f'{{"type": "message", "to": {self.ctx["victim"]}, "clientMsgId": {json.dumps(cmid)}, "content": "'
        unit = "x" if kind == "content" else rng.choice(["\u00e9", "\u20ac", "\U0001f600"])
        return Hostile(f"huge-{kind}", pad(head, '"}', unit), TOO_LARGE, "message", cmid)


# ---------------------------------------------------------------- the flood


def flood(client: Client, frames: HostileFrames, name: str) -> list[str]:
    """Send FRAMES_PER_FLOODER hostile frames in windows; each window's errors must match its frames."""
    labels = []
    for start in range(0, FRAMES_PER_FLOODER, WINDOW):
        window = [frames.next() for _ in range(min(WINDOW, FRAMES_PER_FLOODER - start))]
        for hostile in window:
            client.send(hostile.text)
        errors = []
        for _ in window:
            try:
                errors.append(client.expect("error", timeout=TIMEOUT))
            except AssertionError as missing:
                raise AssertionError(
                    f"seed={SEED} {name}: {len(window) - len(errors)} of frames {start}..{start + len(window) - 1} "
                    f"got no error frame ({missing}); the window: {[(h.label, h.text[:120]) for h in window]}; "
                    f"socket closed with {client.close_code} {client.close_reason!r}"
                ) from None
        unmatched_errors, unmatched = match(window, errors)
        assert not unmatched and not unmatched_errors, (
            f"seed={SEED} {name}, frames {start}..{start + len(window) - 1}: frames without their error: "
            f"{[(h.label, h.code, h.ref_type, h.cmid, h.text[:200]) for h in unmatched]}; "
            f"errors no frame asked for: {[(e['code'], e.get('ref'), e.get('message')) for e in unmatched_errors]}"
        )
        labels += [h.label for h in window]
    return labels


def match(window: list[Hostile], errors: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Hostile]]:
    """Pair each error with a frame that expects it (a maximum bipartite matching: errors of frames that wait
    on the database may come after later frames' errors); return the errors and frames left unpaired."""
    paired: dict[int, int] = {}  # error index -> frame index

    def place(frame: int, seen: set[int]) -> bool:
        for error, candidate in enumerate(errors):
            if error not in seen and window[frame].matches(candidate):
                seen.add(error)
                if error not in paired or place(paired[error], seen):
                    paired[error] = frame
                    return True
        return False

    unmatched = [window[frame] for frame in range(len(window)) if not place(frame, set())]
    return [error for index, error in enumerate(errors) if index not in paired], unmatched


def chat(a: Client, a_id: int, b: Client, b_id: int) -> dict[str, list[tuple[int, str, str]]]:
    """Both users send CHAT_MESSAGES to each other in small windows; each side receives the other's in order."""
    sent: dict[str, list[tuple[int, str, str]]] = {"a": [], "b": []}
    received: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    for start in range(0, CHAT_MESSAGES, 5):
        batch = range(start, start + 5)
        for n in batch:
            a.message(b_id, f"from a #{n} '; DROP TABLE users; --", f"a-{n}")
            b.message(a_id, f"from b #{n} \U0001f600", f"b-{n}")
        for n in batch:
            for name, sender in (("a", a), ("b", b)):
                ack = sender.expect("message_sent", timeout=TIMEOUT, clientMsgId=f"{name}-{n}")
                content = f"from a #{n} '; DROP TABLE users; --" if name == "a" else f"from b #{n} \U0001f600"
                sent[name].append((ack["messageId"], f"{name}-{n}", content))
        for _ in batch:
            # the next `message` frame each side gets is the next one the other sent: in order
            received["b"].append(b.expect("message", timeout=TIMEOUT))
            received["a"].append(a.expect("message", timeout=TIMEOUT))
    for name, recipient, frames_got in (("a", "b", received["b"]), ("b", "a", received["a"])):
        got = [(f["messageId"], f["clientMsgId"], f["content"]) for f in frames_got]
        assert got == sent[name], f"seed={SEED}: {recipient} got {got}, {name} sent {sent[name]}"
    return sent


# ---------------------------------------------------------------- frames that close a socket by design


def _invalid_utf8(rng: random.Random) -> bytes:
    bad = rng.choice([b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x80"])
    return b'{"type": "message", "content": "' + random_chars(rng, 5).encode() + bad + b'"}'


def closing_cases(rng: random.Random) -> list[tuple[str, bytes, int]]:
    big = b'{"type": "ping", "pad": "' + b"p" * MAX_FRAME + b'"}'
    return [
        ("binary", client_frame(OPCODE_BINARY, bytes(rng.randrange(256) for _ in range(200))), 1003),
        ("binary-empty", client_frame(OPCODE_BINARY, b""), 1003),
        ("binary-json", client_frame(OPCODE_BINARY, b'{"type": "ping"}'), 1003),
        ("invalid-utf8", client_frame(OPCODE_TEXT, _invalid_utf8(rng)), 1007),
        ("invalid-utf8-surrogate", client_frame(OPCODE_TEXT, b'{"type": "\xed\xa0\x80"}'), 1007),
        ("invalid-utf8-fragmented", client_frame(OPCODE_TEXT, b'{"type": "\xf0\x9f', fin=False)
         + client_frame(OPCODE_CONTINUATION, b'ping"}'), 1007),
        ("over-64KiB", client_frame(OPCODE_TEXT, b"[" * (MAX_FRAME + 1)), 1009),
        ("over-64KiB-json", client_frame(OPCODE_TEXT, big), 1009),
        ("300KiB", client_frame(OPCODE_TEXT, b"x" * 300_000), 1009),
    ]


def throwaway_closes(server: ServerProcess, user_ids: list[int], rng: random.Random) -> None:
    """Each closing frame on its own fresh, authenticated raw socket: closed with its code, nothing else said."""
    for index, (name, data, code) in enumerate(closing_cases(rng)):
        user_id = user_ids[index % len(user_ids)]
        with RawSocket(server.ws_port) as sock:
            sock.connect(server, user_id)
            sock.send(data)
            got, reason = sock.expect_close(timeout=TIMEOUT)
            assert got == code, f"seed={SEED} {name}: closed with {got} {reason!r}, not {code}"
            assert sock.texts == [], f"seed={SEED} {name}: frames before the close: {sock.texts}"
            sock.send_frame(OPCODE_CLOSE, struct.pack("!H", code))
            sock.sock.shutdown(socket.SHUT_WR)
            sock.expect_eof(timeout=TIMEOUT)


# ---------------------------------------------------------------- the test


def test_hostile_frames_from_six_sockets_are_refused_while_others_chat(make_server: ServerFactory) -> None:
    server = make_server(SCRIPTED_CLIENT_LIMITS).start()  # fuzzers: each sends 600 frames as fast as it can
    ids = server.add_users(FLOODERS + 4)
    flooder_ids, (victim_id, a_id, b_id, throwaway_id) = ids[:FLOODERS], ids[FLOODERS:]
    with ExitStack() as stack:
        flooders = []
        for flooder_id in flooder_ids:
            client = stack.enter_context(server.client(compression=None))
            client.connect(flooder_id, server.token(flooder_id))
            flooders.append(client)
        victim = stack.enter_context(server.connect(victim_id))
        a = stack.enter_context(server.connect(a_id))
        b = stack.enter_context(server.connect(b_id))
        # a real message between a and b, for `message_read` frames that someone else may not send
        a.message(b_id, "setup", "setup")
        setup_id = a.expect("message_sent", clientMsgId="setup")["messageId"]
        b.expect("message", messageId=setup_id)

        generators = [
            HostileFrames(
                random.Random(SEED * 100 + index),
                {
                    "self": flooder_id,
                    "victim": victim_id,
                    "setup_message": setup_id,
                    "own_token": server.token(flooder_id),
                    "victim_token": server.token(victim_id),
                    "expired_token": server.token(flooder_id, ttl=-60),
                },
                f"h{index}",
            )
            for index, flooder_id in enumerate(flooder_ids)
        ]
        with ThreadPoolExecutor(max_workers=FLOODERS + 2) as pool:
            floods = [
                pool.submit(flood, client, frames, f"flooder {index} (user {client_id})")
                for index, (client, frames, client_id) in enumerate(zip(flooders, generators, flooder_ids))
            ]
            chatting = pool.submit(chat, a, a_id, b, b_id)
            closing = pool.submit(throwaway_closes, server, [throwaway_id] + flooder_ids, random.Random(SEED))
            labels = Counter(label for future in floods for label in future.result(timeout=120))
            sent = chatting.result(timeout=120)
            closing.result(timeout=120)
        assert sum(labels.values()) == FLOODERS * FRAMES_PER_FLOODER
        assert len(labels) >= 40, f"seed={SEED}: too few kinds of hostile frames: {labels}"

        # every flooder socket is open, answers a ping, and was sent nothing but its errors and the pong
        for index, client in enumerate(flooders):
            client.assert_alive()
            assert client.close_code is None, f"seed={SEED} flooder {index}: closed with {client.close_code}"
            assert client.received == [], f"seed={SEED} flooder {index}: unexpected frames {client.received[:5]}"

        # nothing of the refused frames was stored or pushed
        victim.assert_alive()
        assert message_frames(victim) == [], f"seed={SEED}: {victim.received[:5]}"
        for flooder_id in flooder_ids:
            assert history(victim, flooder_id) == [], f"seed={SEED}: a message from {flooder_id} was stored"

        # the chat: each message exactly once, in order, and stored once
        a.assert_alive()
        b.assert_alive()
        assert message_frames(a) + message_frames(b) == []
        a.send({"type": "history", "with": b_id, "limit": 100})
        page = a.expect("history", **{"with": b_id})["messages"]
        stored = [(m["messageId"], m["from"], m["content"]) for m in page if m["messageId"] != setup_id]
        expected = sorted(
            [(mid, a_id, content) for mid, _, content in sent["a"]]
            + [(mid, b_id, content) for mid, _, content in sent["b"]]
        )
        assert stored == expected, f"seed={SEED}: history {stored} != sent {expected}"

    assert_service_works(server)
    status, body = server.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok", (status, body)


# ---------------------------------------------------------------- tricky but valid contents

TRICKY_CONTENTS = [
    "'; DROP TABLE users; --",
    "1 OR 1=1",
    "Robert'); DROP TABLE realtime_messages;--",
    '" OR ""="',
    "1' UNION SELECT id, username FROM users --",
    "%s %d %(content)s {0} {} %% %",
    "? :id $1 @p",
    "back\\slash \\\\ \\n \\u0000 \\\" \\",
    "quotes ' \" ` \u00b4 \u2018 \u2019 \u201c \u201d",
    '{"type": "ping"}',
    '"}]} \', "type": "message"',
    "<script>alert('x')</script> &amp; &lt;",
    (
        "\U0001f600\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
        " \U0001f3f3\ufe0f\u200d\U0001f308"
    ),
    "\U0001d573\U0001d58a\U0001d591\U0001d591\U0001d594 \U00020731\U00020779 \U0001f9ec",
    "\U0010fffd \U000e0041 \U0001fffe",
    (
        "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd \u0645\u0631\u062d\u0628\u0627"
        " \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u202eevil\u202c"
    ),
    "a\u200bb\u200cc\u200dd\u2060e\ufeff",
    "e\u0301 \u00e9 \u212b \u00c5 \ufb01 fi",
    "ctl \u0001\u0002\u0003\u001b[31m\u001f\u007f\u0080\u009f",
    "tab\there\tand\u000bvt\u000cff",
    "line1\nline2\r\nline3\rend\n",
    "\u2028line sep\u2029para sep",
    "before\u0000after",
    "\u0000leading nul",
    "  leading and trailing spaces  ",
    "\ufffd \uffff \ufdd0 \ufffe",
    "\u00a0x\u3000",
    "\ud55c\uad6d\uc5b4 \u4e2d\u6587 \u65e5\u672c\u8a9e \u0939\u093f\u0928\u094d\u0926\u0940",
    "\u00c3\u00a9 \u00e2\u20ac\u2122",
    '{"$gt": ""}',
    "x",
]
TRICKY_CLIENT_MSG_IDS = ["CaseTest", "casetest", "casetest ", "\u00df", "ss", "e\u0301", "\u00e9",
                         "'; DROP TABLE users; --", "\U0001f600", "\u202eid"]


def exact_contents(rng: random.Random) -> list[str]:
    pool = [c for c in "".join(TRICKY_CONTENTS)] + ["\U0001f600", "\u200d", "\u0000", "\n", "\\", '"', "'"]
    return [
        "a" * (MAX_CONTENT - 1) + "\U0001f600",
        "".join(rng.choice(pool) for _ in range(MAX_CONTENT)),
        ("'; DROP TABLE users; --" * 200)[:MAX_CONTENT],
        "\\" * MAX_CONTENT,
    ]


def test_tricky_valid_contents_come_back_exactly_as_sent(server: ServerProcess) -> None:
    rng = random.Random(SEED)
    sender_id, recipient_id = server.add_users(2)
    contents = TRICKY_CONTENTS + exact_contents(rng)
    assert all(len(content) <= MAX_CONTENT for content in contents)
    assert sum(len(content) == MAX_CONTENT for content in contents) == 4
    client_msg_ids = TRICKY_CLIENT_MSG_IDS + [f"tricky-{n}" for n in range(len(TRICKY_CLIENT_MSG_IDS), len(contents))]
    with server.connect(sender_id) as sender, server.connect(recipient_id) as recipient:
        sent = []
        for index, (content, client_msg_id) in enumerate(zip(contents, client_msg_ids)):
            frame = {"type": "message", "to": recipient_id, "content": content, "clientMsgId": client_msg_id}
            # escaped (\uXXXX, surrogate pairs for astral characters) or raw UTF-8 on the wire
            sender.send(json.dumps(frame, ensure_ascii=index % 2 == 0))
            ack = sender.expect("message_sent", clientMsgId=client_msg_id)
            assert ack["to"] == recipient_id
            pushed = recipient.expect("message", messageId=ack["messageId"])
            assert pushed["content"] == content, f"pushed {pushed['content']!r}, sent {content!r}"
            assert pushed["clientMsgId"] == client_msg_id and pushed["from"] == sender_id, pushed
            sent.append((ack["messageId"], content))
        # each clientMsgId (case, trailing space and normalization variants alike) made its own message
        assert len({message_id for message_id, _ in sent}) == len(contents)

        for reader, other in ((recipient, sender_id), (sender, recipient_id)):
            stored = [(m["messageId"], m["content"]) for m in history(reader, other)]
            assert stored == sent
            for (_, got), (_, want) in zip(stored, sent):
                assert got.encode("utf-8") == want.encode("utf-8"), (got, want)
        sender.assert_alive()
        recipient.assert_alive()
        assert message_frames(recipient) == []
    assert_service_works(server)


# ---------------------------------------------------------------- a token that is not valid text


def test_a_connect_token_with_a_lone_surrogate_is_unauthorized(server: ServerProcess) -> None:
    (a_id,) = server.add_users(1)
    token = server.token(a_id) + "\ud800"
    # as the first frame: refused like any bad token
    with server.client() as first:
        first.send(json.dumps({"type": "connect", "userId": a_id, "token": token}))
        error = first.expect("error")
        assert error["code"] == "unauthorized" and error["ref"] == {"type": "connect"}, error
        assert first.expect_close() == 4401
    # on an authenticated socket: refused, and the socket stays open (as tests/integration/test_auth.py has it)
    with server.connect(a_id) as again:
        again.send(json.dumps({"type": "connect", "userId": a_id, "token": "abc\ud800"}))
        error = again.expect("error")
        assert error["code"] == "unauthorized" and error["ref"] == {"type": "connect"}, error
        again.assert_alive()
    assert_service_works(server)
