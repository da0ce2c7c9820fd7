"""Bad input over real sockets: every malformed frame of the wire contract.

Each case asserts the exact `error` code (with `ref`) or close code, that the
same socket keeps working where the contract says it stays open, and that the
service keeps working for other users. Authentication cases are in
tests/integration/test_auth.py.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from typing import Any, Callable

import pytest

from tests.helpers.chat import (
    MAX_CONTENT,
    MAX_FRAME,
    assert_message_goes_through,
    assert_service_works,
    history,
    message_frames,
    padded_message,
)
from tests.helpers.client import Client
from tests.helpers.server import ServerProcess

Frame = dict[str, Any] | str


# ---------------------------------------------------------------- helpers


def refused(client: Client, frame: Frame, code: str, ref: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send `frame` and take the next `error` frame; assert its code and (when given) its exact `ref`."""
    client.send(frame)
    error = client.expect("error")
    assert error["code"] == code, error
    assert isinstance(error.get("message"), str), error
    if ref is not None:
        assert error.get("ref") == ref, error
    return error


# ---------------------------------------------------------------- cases

# (id, frame, code, ref): `frame` is a str sent as is, or a callable(recipient_id) -> dict.
# `ref` None means the frame had no string type, so no ref can name it: then `ref` is there but names no type.
NESTED = "[" * 30_000 + "]" * 30_000

FRAME_CASES: list[tuple[str, Callable[[int], Frame] | str, str, dict[str, Any] | None]] = [
    # not JSON
    ("text", "hello", "bad_request", None),
    ("truncated-json", '{"type": "ping"', "bad_request", None),
    ("empty-text", "", "bad_request", None),
    ("single-quotes", "{'type': 'ping'}", "bad_request", None),
    ("huge-integer", '{"type": "message", "to": ' + "9" * 5000 + ', "content": "x"}', "bad_request", None),
    ("deep-nesting", NESTED, "bad_request", None),
    ("deep-nesting-in-object", '{"type": "ping", "x": ' + NESTED + "}", "bad_request", None),
    # JSON, but not an object
    ("array", '[{"type": "ping"}]', "bad_request", None),
    ("empty-array", "[]", "bad_request", None),
    ("number", "42", "bad_request", None),
    ("float", "1.5", "bad_request", None),
    ("string", '"ping"', "bad_request", None),
    ("null", "null", "bad_request", None),
    ("true", "true", "bad_request", None),
    # object without a string type
    ("no-type", lambda to: {"to": to, "content": "hi"}, "bad_request", None),
    ("empty-object", "{}", "bad_request", None),
    ("type-null", lambda to: {"type": None}, "bad_request", None),
    ("type-number", lambda to: {"type": 7}, "bad_request", None),
    ("type-bool", lambda to: {"type": True}, "bad_request", None),
    ("type-list", lambda to: {"type": ["message"]}, "bad_request", None),
    ("type-object", lambda to: {"type": {"name": "message"}}, "bad_request", None),
    # unknown type
    ("type-unknown", lambda to: {"type": "bogus"}, "bad_request", {"type": "bogus"}),
    ("type-empty", lambda to: {"type": ""}, "bad_request", {"type": ""}),
    ("type-wrong-case", lambda to: {"type": "Message", "to": to, "content": "hi"}, "bad_request", {"type": "Message"}),
    ("type-server-frame", lambda to: {"type": "message_sent"}, "bad_request", {"type": "message_sent"}),
    ("type-unknown-echoes-cmid", lambda to: {"type": "bogus", "clientMsgId": "u1"}, "bad_request",
     {"type": "bogus", "clientMsgId": "u1"}),
    # message: content
    ("content-empty", lambda to: {"type": "message", "to": to, "content": ""}, "bad_request", {"type": "message"}),
    ("content-whitespace", lambda to: {"type": "message", "to": to, "content": " \t\n\r  \u00a0"}, "bad_request",
     {"type": "message"}),
    ("content-too-long", lambda to: {"type": "message", "to": to, "content": "x" * (MAX_CONTENT + 1)}, "too_large",
     {"type": "message"}),
    ("content-too-long-multibyte", lambda to: {"type": "message", "to": to, "content": "\u00e9" * (MAX_CONTENT + 1)},
     "too_large", {"type": "message"}),
    ("content-missing", lambda to: {"type": "message", "to": to}, "bad_request", {"type": "message"}),
    ("content-null", lambda to: {"type": "message", "to": to, "content": None}, "bad_request", {"type": "message"}),
    ("content-number", lambda to: {"type": "message", "to": to, "content": 123}, "bad_request", {"type": "message"}),
    ("content-bool", lambda to: {"type": "message", "to": to, "content": True}, "bad_request", {"type": "message"}),
    ("content-list", lambda to: {"type": "message", "to": to, "content": ["hi"]}, "bad_request", {"type": "message"}),
    ("content-object", lambda to: {"type": "message", "to": to, "content": {"text": "hi"}}, "bad_request",
     {"type": "message"}),
    ("content-lone-surrogate", lambda to: '{"type": "message", "to": %d, "content": "a\\ud800b"}' % to,
     "bad_request", {"type": "message"}),
    # message: to
    ("to-missing", lambda to: {"type": "message", "content": "hi"}, "bad_request", {"type": "message"}),
    ("to-null", lambda to: {"type": "message", "to": None, "content": "hi"}, "bad_request", {"type": "message"}),
    ("to-string", lambda to: {"type": "message", "to": str(to), "content": "hi"}, "bad_request", {"type": "message"}),
    ("to-float", lambda to: {"type": "message", "to": to + 0.5, "content": "hi"}, "bad_request", {"type": "message"}),
    ("to-integral-float", lambda to: {"type": "message", "to": float(to), "content": "hi"}, "bad_request",
     {"type": "message"}),
    ("to-true", lambda to: {"type": "message", "to": True, "content": "hi"}, "bad_request", {"type": "message"}),
    ("to-false", lambda to: {"type": "message", "to": False, "content": "hi"}, "bad_request", {"type": "message"}),
    ("to-negative", lambda to: {"type": "message", "to": -to, "content": "hi"}, "bad_request", {"type": "message"}),
    ("to-zero", lambda to: {"type": "message", "to": 0, "content": "hi"}, "bad_request", {"type": "message"}),
    ("to-over-int64", lambda to: {"type": "message", "to": 2**63, "content": "hi"}, "bad_request", {"type": "message"}),
    ("to-list", lambda to: {"type": "message", "to": [to], "content": "hi"}, "bad_request", {"type": "message"}),
    ("to-nan", lambda to: '{"type": "message", "to": NaN, "content": "hi"}', "bad_request", {"type": "message"}),
    ("to-infinity", lambda to: '{"type": "message", "to": 1e400, "content": "hi"}', "bad_request",
     {"type": "message"}),
    # message: clientMsgId
    ("cmid-too-long", lambda to: {"type": "message", "to": to, "content": "hi", "clientMsgId": "k" * 65},
     "bad_request", {"type": "message"}),
    ("cmid-number", lambda to: {"type": "message", "to": to, "content": "hi", "clientMsgId": 12}, "bad_request",
     {"type": "message"}),
    ("cmid-bool", lambda to: {"type": "message", "to": to, "content": "hi", "clientMsgId": True}, "bad_request",
     {"type": "message"}),
    ("cmid-list", lambda to: {"type": "message", "to": to, "content": "hi", "clientMsgId": ["a"]}, "bad_request",
     {"type": "message"}),
    ("cmid-object", lambda to: {"type": "message", "to": to, "content": "hi", "clientMsgId": {"a": 1}},
     "bad_request", {"type": "message"}),
    # the offending frame's clientMsgId is echoed in ref
    ("cmid-echoed-empty-content", lambda to: {"type": "message", "to": to, "content": "", "clientMsgId": "e-1"},
     "bad_request", {"type": "message", "clientMsgId": "e-1"}),
    ("cmid-echoed-bad-to", lambda to: {"type": "message", "to": "x", "content": "hi", "clientMsgId": "e-2"},
     "bad_request", {"type": "message", "clientMsgId": "e-2"}),
    ("cmid-echoed-too-large", lambda to: {"type": "message", "to": to, "content": "y" * 4001, "clientMsgId": "e-3"},
     "too_large", {"type": "message", "clientMsgId": "e-3"}),
    # message_read
    ("read-missing-id", lambda to: {"type": "message_read"}, "bad_request", {"type": "message_read"}),
    ("read-id-string", lambda to: {"type": "message_read", "messageId": "1"}, "bad_request", {"type": "message_read"}),
    ("read-id-zero", lambda to: {"type": "message_read", "messageId": 0}, "bad_request", {"type": "message_read"}),
    ("read-id-negative", lambda to: {"type": "message_read", "messageId": -3}, "bad_request",
     {"type": "message_read"}),
    ("read-id-float", lambda to: {"type": "message_read", "messageId": 1.5}, "bad_request", {"type": "message_read"}),
    ("read-id-bool", lambda to: {"type": "message_read", "messageId": True}, "bad_request", {"type": "message_read"}),
    # history
    ("history-with-missing", lambda to: {"type": "history"}, "bad_request", {"type": "history"}),
    ("history-with-string", lambda to: {"type": "history", "with": str(to)}, "bad_request", {"type": "history"}),
    ("history-with-zero", lambda to: {"type": "history", "with": 0}, "bad_request", {"type": "history"}),
    ("history-with-negative", lambda to: {"type": "history", "with": -to}, "bad_request", {"type": "history"}),
    ("history-with-float", lambda to: {"type": "history", "with": to + 0.5}, "bad_request", {"type": "history"}),
    ("history-with-bool", lambda to: {"type": "history", "with": True}, "bad_request", {"type": "history"}),
    ("history-limit-zero", lambda to: {"type": "history", "with": to, "limit": 0}, "bad_request", {"type": "history"}),
    ("history-limit-negative", lambda to: {"type": "history", "with": to, "limit": -5}, "bad_request",
     {"type": "history"}),
    ("history-limit-string", lambda to: {"type": "history", "with": to, "limit": "10"}, "bad_request",
     {"type": "history"}),
    ("history-limit-float", lambda to: {"type": "history", "with": to, "limit": 2.5}, "bad_request",
     {"type": "history"}),
    ("history-limit-bool", lambda to: {"type": "history", "with": to, "limit": True}, "bad_request",
     {"type": "history"}),
    ("history-before-string", lambda to: {"type": "history", "with": to, "before": "9"}, "bad_request",
     {"type": "history"}),
    ("history-before-zero", lambda to: {"type": "history", "with": to, "before": 0}, "bad_request",
     {"type": "history"}),
    # notifications
    ("notifications-limit-zero", lambda to: {"type": "notifications", "limit": 0}, "bad_request",
     {"type": "notifications"}),
    ("notifications-limit-string", lambda to: {"type": "notifications", "limit": "5"}, "bad_request",
     {"type": "notifications"}),
    ("notifications-before-negative", lambda to: {"type": "notifications", "before": -1}, "bad_request",
     {"type": "notifications"}),
    # notification_read
    ("notification-read-neither", lambda to: {"type": "notification_read"}, "bad_request",
     {"type": "notification_read"}),
    ("notification-read-all-false", lambda to: {"type": "notification_read", "all": False}, "bad_request",
     {"type": "notification_read"}),
    ("notification-read-all-string", lambda to: {"type": "notification_read", "all": "true"}, "bad_request",
     {"type": "notification_read"}),
    ("notification-read-all-one", lambda to: {"type": "notification_read", "all": 1}, "bad_request",
     {"type": "notification_read"}),
    ("notification-read-id-string", lambda to: {"type": "notification_read", "notificationId": "3"}, "bad_request",
     {"type": "notification_read"}),
    ("notification-read-id-zero", lambda to: {"type": "notification_read", "notificationId": 0}, "bad_request",
     {"type": "notification_read"}),
]


def build(frame: Callable[[int], Frame] | str, recipient_id: int) -> Frame:
    return frame(recipient_id) if callable(frame) else frame


@pytest.mark.parametrize(("frame", "code", "ref"), [case[1:] for case in FRAME_CASES], ids=[c[0] for c in FRAME_CASES])
def test_malformed_frame_is_refused_and_socket_stays_open(
    server: ServerProcess, frame: Callable[[int], Frame] | str, code: str, ref: dict[str, Any] | None
) -> None:
    a_id, b_id = server.add_users(2)
    with server.connect(a_id) as a, server.connect(b_id) as b:
        error = refused(a, build(frame, b_id), code)
        if ref is None:
            assert error["ref"].get("type") is None, error
        else:
            assert error.get("ref") == ref, error
        # the same socket still works, and nothing of the refused frame was stored or pushed
        a.assert_alive()
        message_id = assert_message_goes_through(a, a_id, b, b_id)
        assert message_frames(b) == []
        assert [m["messageId"] for m in history(a, b_id)] == [message_id]
    assert_service_works(server)


# ---------------------------------------------------------------- content limits


def test_content_of_exactly_the_limit_is_accepted_and_stored(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    with server.connect(a_id) as a, server.connect(b_id) as b:
        contents = {
            "ascii": "a" * (MAX_CONTENT - 1) + "z",
            "two-byte": "\u00e9" * MAX_CONTENT,
            "astral": "\U0001f600" * MAX_CONTENT,  # 4 UTF-8 bytes each: needs utf8mb4 on MariaDB
        }
        sent_ids = {}
        for name, content in contents.items():
            assert len(content) == MAX_CONTENT
            a.message(b_id, content, name)
            sent = a.expect("message_sent", clientMsgId=name)
            received = b.expect("message", messageId=sent["messageId"])
            assert received["content"] == content
            sent_ids[name] = sent["messageId"]
        stored = {m["messageId"]: m["content"] for m in history(b, a_id)}
        assert stored == {sent_ids[name]: content for name, content in contents.items()}
        # one over the limit is refused, and stores nothing
        refused(a, {"type": "message", "to": b_id, "content": "a" * (MAX_CONTENT + 1), "clientMsgId": "over"},
                "too_large", {"type": "message", "clientMsgId": "over"})
        a.assert_alive()
        assert len(history(a, b_id)) == len(contents)
    assert_service_works(server)


def test_client_msg_id_of_64_chars_is_accepted_and_65_refused(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    with server.connect(a_id) as a, server.connect(b_id) as b:
        longest = "m" * 64
        a.message(b_id, "sixty-four", longest)
        sent = a.expect("message_sent", clientMsgId=longest)
        assert b.expect("message", messageId=sent["messageId"])["clientMsgId"] == longest
        error = refused(a, {"type": "message", "to": b_id, "content": "sixty-five", "clientMsgId": "m" * 65},
                        "bad_request")
        # a clientMsgId that is itself invalid is not echoed
        assert error["ref"] == {"type": "message"}, error
        a.assert_alive()
        assert [m["content"] for m in history(a, b_id)] == ["sixty-four"]
    assert_service_works(server)


# ---------------------------------------------------------------- not_found / forbidden


def test_message_to_a_user_that_does_not_exist_is_not_found(server: ServerProcess) -> None:
    (a_id,) = server.add_users(1)
    missing = a_id + 10_000_000
    with server.connect(a_id) as a, server.connect(a_id) as a2:
        refused(a, {"type": "message", "to": missing, "content": "anyone?", "clientMsgId": "nf-1"},
                "not_found", {"type": "message", "clientMsgId": "nf-1"})
        refused(a, {"type": "message", "to": missing, "content": "anyone?"}, "not_found", {"type": "message"})
        refused(a, {"type": "message", "to": 2**63 - 1, "content": "largest id", "clientMsgId": "nf-2"},
                "not_found", {"type": "message", "clientMsgId": "nf-2"})
        a.assert_alive()
        # nothing was stored, and the sender's other socket was told of nothing
        assert history(a, missing) == []
        a2.assert_alive()
        assert message_frames(a2) == []
        # the same clientMsgId can then be used for a real message
        (b_id,) = server.add_users(1)
        with server.connect(b_id) as b:
            a.message(b_id, "now to someone real", "nf-1")
            sent = a.expect("message_sent", clientMsgId="nf-1")
            assert b.expect("message", messageId=sent["messageId"])["content"] == "now to someone real"
    assert_service_works(server)


def test_message_read_by_someone_other_than_the_recipient_is_forbidden(server: ServerProcess) -> None:
    a_id, b_id, c_id = server.add_users(3)
    with server.connect(a_id) as a, server.connect(b_id) as b, server.connect(c_id) as c:
        message_id = assert_message_goes_through(a, a_id, b, b_id)
        # a third user, and the sender itself, did not receive it
        refused(c, {"type": "message_read", "messageId": message_id}, "forbidden", {"type": "message_read"})
        refused(a, {"type": "message_read", "messageId": message_id}, "forbidden", {"type": "message_read"})
        c.assert_alive()
        a.assert_alive()
        # still unread for its real recipient, and nobody was told it was read
        [entry] = history(b, a_id)
        assert entry["messageId"] == message_id and entry["status"] in ("sent", "delivered"), entry
        assert [f for f in a.received if f.get("type") == "message_read"] == []
        # the recipient can still mark it read
        b.send({"type": "message_read", "messageId": message_id})
        read = a.expect("message_read", messageId=message_id)
        assert read["readBy"] == b_id
        [entry] = history(b, a_id)
        assert entry["status"] == "read"
    assert_service_works(server)


def test_message_read_of_a_message_that_does_not_exist_is_not_found(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    with server.connect(a_id) as a, server.connect(b_id) as b:
        message_id = assert_message_goes_through(a, a_id, b, b_id)
        refused(b, {"type": "message_read", "messageId": message_id + 10_000_000}, "not_found",
                {"type": "message_read"})
        refused(b, {"type": "message_read", "messageId": 2**63 - 1}, "not_found", {"type": "message_read"})
        b.assert_alive()
        [entry] = history(b, a_id)
        assert entry["status"] in ("sent", "delivered"), entry
    assert_service_works(server)


def test_notification_read_of_a_notification_that_does_not_exist_is_not_found(server: ServerProcess) -> None:
    (a_id,) = server.add_users(1)
    with server.connect(a_id) as a:
        refused(a, {"type": "notification_read", "notificationId": 2**62}, "not_found", {"type": "notification_read"})
        a.assert_alive()
        # `all: true` with nothing to read is fine
        a.send({"type": "notification_read", "all": True})
        assert a.expect("notification_read")["all"] is True
    assert_service_works(server)


# ---------------------------------------------------------------- frame size and binary frames


@pytest.mark.parametrize("size", [60 * 1024, MAX_FRAME], ids=["60KiB", "exactly-64KiB"])
def test_frame_within_the_frame_limit_with_too_long_content_is_too_large(server: ServerProcess, size: int) -> None:
    a_id, b_id = server.add_users(2)
    with server.client(compression=None) as a, server.connect(b_id) as b:
        a.connect(a_id, server.token(a_id))
        refused(a, padded_message(b_id, size, "big"), "too_large", {"type": "message", "clientMsgId": "big"})
        a.assert_alive()
        assert a.close_code is None
        assert_message_goes_through(a, a_id, b, b_id)
        assert message_frames(b) == []
    assert_service_works(server)


def oversize_text(client: Client, to: int) -> None:
    client.send(padded_message(to, MAX_FRAME + 1, "too-big"))


def oversize_fragmented(client: Client, to: int) -> None:
    text = padded_message(to, MAX_FRAME + 1000, "too-big")
    client.connection.send(iter([text[:40_000], text[40_000:]]))  # each fragment under the limit


def oversize_huge(client: Client, to: int) -> None:
    client.send(padded_message(to, 1024 * 1024, "too-big"))


def binary_frame(client: Client, to: int) -> None:
    client.send(json.dumps({"type": "message", "to": to, "content": "as bytes"}).encode())


def binary_empty(client: Client, to: int) -> None:
    client.send(b"")


CLOSING_CASES = [
    ("over-64KiB", oversize_text, 1009),
    ("over-64KiB-fragmented", oversize_fragmented, 1009),
    ("1MiB", oversize_huge, 1009),
    ("binary", binary_frame, 1003),
    ("binary-empty", binary_empty, 1003),
]


@pytest.mark.parametrize(("send", "close_code"), [c[1:] for c in CLOSING_CASES], ids=[c[0] for c in CLOSING_CASES])
def test_oversize_or_binary_frame_closes_only_that_socket(
    server: ServerProcess, send: Callable[[Client, int], None], close_code: int
) -> None:
    a_id, b_id = server.add_users(2)
    with ExitStack() as stack:
        a = stack.enter_context(server.client(compression=None))
        a.connect(a_id, server.token(a_id))
        a_other = stack.enter_context(server.connect(a_id))
        b = stack.enter_context(server.connect(b_id))
        send(a, b_id)
        assert a.expect_close() == close_code
        # nothing of the refused frame was stored or pushed
        assert [f for f in a.received if f.get("type") in ("message_sent", "error")] == []
        # the user's other socket and other users keep working, both ways
        a_other.assert_alive()
        assert_message_goes_through(a_other, a_id, b, b_id)
        assert_message_goes_through(b, b_id, a_other, a_id)
        assert message_frames(b) == [] and message_frames(a_other) == []
        # the user can open a new socket
        with server.connect(a_id) as again:
            again.assert_alive()
            assert_message_goes_through(again, a_id, b, b_id)
        assert [m["content"] for m in history(b, a_id) if m["content"].startswith("x")] == []
    assert_service_works(server)


# ---------------------------------------------------------------- many bad frames in a row


def test_many_bad_frames_then_a_valid_message_is_delivered_exactly_once(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    cases = [case for case in FRAME_CASES if case[0] not in ("deep-nesting", "deep-nesting-in-object")]
    with server.connect(a_id) as a, server.connect(b_id) as b:
        batch = [cases[i % len(cases)] for i in range(200)]
        for _, frame, _, _ in batch:
            a.send(build(frame, b_id))
        for name, _, code, ref in batch:
            error = a.expect("error")
            assert error["code"] == code, (name, error)
            if ref is not None:
                assert error.get("ref") == ref, (name, error)
        assert [f for f in a.received if f.get("type") != "error"] == []
        a.assert_alive()
        a.message(b_id, "after the storm", "storm-1")
        sent = a.expect("message_sent", clientMsgId="storm-1")
        received = b.expect("message", messageId=sent["messageId"])
        assert received["content"] == "after the storm" and received["from"] == a_id
        b.assert_no_frame("message", within=0.5)
        assert message_frames(b) == []
        assert [m["messageId"] for m in history(b, a_id)] == [sent["messageId"]]
    assert_service_works(server)


# ---------------------------------------------------------------- invalid text


def test_text_frame_that_is_not_utf8_closes_with_1007(server: ServerProcess) -> None:
    a_id, b_id = server.add_users(2)
    with server.connect(a_id) as a, server.connect(a_id) as a_other, server.connect(b_id) as b:
        a.connection.send(b'{"type": "ping", "x": "\xff\xfe"}', text=True)
        assert a.expect_close() == 1007
        a_other.assert_alive()
        assert_message_goes_through(a_other, a_id, b, b_id)
    assert_service_works(server)


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "message", "to": %d, "content": "hi", "clientMsgId": "id\\ud800"}',
        '{"type": "messag\\ud800e", "to": %d}',
    ],
    ids=["clientMsgId", "type"],
)
def test_a_lone_surrogate_in_type_or_client_msg_id_still_gets_an_error(server: ServerProcess, text: str) -> None:
    a_id, b_id = server.add_users(2)
    with server.connect(a_id) as a, server.connect(b_id) as b:
        a.send(text % b_id)
        a.send({"type": "ping"})  # queued behind the error frame
        assert a.expect("error", timeout=2)["code"] == "bad_request"
        a.expect("pong", timeout=2)
        assert_message_goes_through(a, a_id, b, b_id)
    assert_service_works(server)
