"""Pure tests of the wire contract's frame parsing and server frame builders.

No sockets, no gevent, no database: `protocol.frames` is plain functions.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import frames as frames_module
from protocol.frames import (
    MAX_ID,
    MAX_READ_IDS,
    MAX_REF_TYPE_CHARS,
    Connect,
    DeleteMessage,
    ErrorCode,
    FetchConversations,
    FetchHistory,
    FetchNotifications,
    FrameError,
    Limits,
    MarkNotificationRead,
    MarkRead,
    Ping,
    SendMessage,
    Typing,
    Watch,
    command_ref,
    connected_frame,
    conversations_frame,
    error_frame,
    history_entry,
    history_frame,
    iso_time,
    message_deleted_frame,
    message_delivered_frame,
    message_frame,
    message_read_frame,
    message_sent_frame,
    notification_entry,
    notification_read_frame,
    notifications_frame,
    parse_frame,
    pong_frame,
    typing_frame,
)

CONTRACT_CODES = {
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "too_large",
    "rate_limited",
    "unavailable",
    "internal",
}


def test_error_codes_are_the_contracts():
    codes = {value for name, value in vars(ErrorCode).items() if not name.startswith("_")}
    assert codes == CONTRACT_CODES


CLIENT_TYPES = [
    "connect",
    "message",
    "message_read",
    "history",
    "notifications",
    "notification_read",
    "ping",
    "typing",
    "conversations",
    "watch",
]


DEFAULT_LIMITS = Limits()


def parse(frame: dict | str, limits: Limits = DEFAULT_LIMITS):
    return parse_frame(frame if isinstance(frame, str) else json.dumps(frame), limits)


def refused(frame: dict | str, limits: Limits = DEFAULT_LIMITS) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse(frame, limits)
    assert caught.value.code in CONTRACT_CODES
    return caught.value


# ================================================================ valid frames


class TestValidFrames:
    def test_connect(self):
        assert parse({"type": "connect", "userId": 7, "token": "t.o.k"}) == Connect(user_id=7, token="t.o.k")

    def test_connect_user_id_as_string_of_digits(self):
        assert parse({"type": "connect", "userId": "42", "token": "t"}) == Connect(user_id=42, token="t")

    def test_connect_without_user_id_or_token(self):
        # the token may come from the handshake's query string instead
        assert parse({"type": "connect"}) == Connect(user_id=None, token=None)

    def test_message(self):
        command = parse({"type": "message", "to": 2, "content": "hello", "clientMsgId": "c-1"})
        assert command == SendMessage(to=2, content="hello", client_msg_id="c-1")

    def test_message_without_client_msg_id(self):
        assert parse({"type": "message", "to": 2, "content": "hi"}) == SendMessage(2, "hi", None)

    def test_message_unicode_content_kept_exactly(self):
        content = "  héllo 👋 世界\n "
        assert parse({"type": "message", "to": 2, "content": content}).content == content

    def test_message_content_exactly_at_the_limit(self):
        content = "x" * Limits().max_content_chars
        assert parse({"type": "message", "to": 2, "content": content}).content == content

    def test_message_content_limit_counts_characters_not_bytes(self):
        content = "é" * 4000  # 8000 UTF-8 bytes, 4000 characters
        assert parse({"type": "message", "to": 2, "content": content}).content == content

    def test_client_msg_id_of_exactly_64_chars(self):
        command = parse({"type": "message", "to": 2, "content": "x", "clientMsgId": "a" * 64})
        assert command.client_msg_id == "a" * 64

    def test_largest_id(self):
        assert parse({"type": "message_read", "messageId": MAX_ID}) == MarkRead(MAX_ID)

    def test_message_read(self):
        assert parse({"type": "message_read", "messageId": 9}) == MarkRead(message_id=9)

    def test_message_delete(self):
        assert parse({"type": "message_delete", "messageId": 9}) == DeleteMessage(message_id=9)
        assert parse({"type": "message_delete", "messageId": MAX_ID}) == DeleteMessage(MAX_ID)

    def test_history_defaults(self):
        assert parse({"type": "history", "with": 3}) == FetchHistory(with_user=3, before=None, limit=50)

    def test_history_with_before_and_limit(self):
        assert parse({"type": "history", "with": 3, "before": 99, "limit": 10}) == FetchHistory(3, 99, 10)

    def test_history_null_before_and_limit_mean_defaults(self):
        assert parse({"type": "history", "with": 3, "before": None, "limit": None}) == FetchHistory(3, None, 50)

    @pytest.mark.parametrize("limit, expected", [(1, 1), (100, 100), (101, 100), (10**6, 100), (MAX_ID, 100)])
    def test_history_limit_clamped_to_100(self, limit, expected):
        assert parse({"type": "history", "with": 3, "limit": limit}).limit == expected

    def test_notifications_defaults(self):
        assert parse({"type": "notifications"}) == FetchNotifications(before=None, limit=20)

    def test_notifications_with_before_and_limit(self):
        assert parse({"type": "notifications", "before": 5, "limit": 7}) == FetchNotifications(5, 7)

    @pytest.mark.parametrize("limit, expected", [(1, 1), (100, 100), (101, 100), (10**9, 100)])
    def test_notifications_limit_clamped_to_100(self, limit, expected):
        assert parse({"type": "notifications", "limit": limit}).limit == expected

    def test_page_sizes_follow_the_configured_limits(self):
        limits = Limits(history_page=5, history_page_max=8, notifications_page=3, notifications_page_max=4)
        assert parse({"type": "history", "with": 1}, limits).limit == 5
        assert parse({"type": "history", "with": 1, "limit": 9}, limits).limit == 8
        assert parse({"type": "notifications"}, limits).limit == 3
        assert parse({"type": "notifications", "limit": 9}, limits).limit == 4

    def test_content_limit_follows_the_configured_limits(self):
        limits = Limits(max_content_chars=3)
        assert parse({"type": "message", "to": 1, "content": "abc"}, limits).content == "abc"
        assert refused({"type": "message", "to": 1, "content": "abcd"}, limits).code == "too_large"

    def test_conversations_defaults(self):
        assert parse({"type": "conversations"}) == FetchConversations(before=None, limit=20)
        assert parse({"type": "conversations", "before": None, "limit": None}) == FetchConversations(None, 20)

    @pytest.mark.parametrize("limit", [1, 37, 100])
    def test_conversations_with_before_and_limit(self, limit):
        assert parse({"type": "conversations", "before": 41, "limit": limit}) == FetchConversations(41, limit)

    @pytest.mark.parametrize("limit", [101, 10**6, MAX_ID, 0, -1, "10", 2.5, True])
    def test_conversations_limit_over_100_or_not_a_positive_integer_is_refused(self, limit):
        error = refused({"type": "conversations", "limit": limit})
        assert (error.code, error.ref) == ("bad_request", {"type": "conversations"})

    @pytest.mark.parametrize("before", [0, -3, "7", 1.5, False, MAX_ID + 1])
    def test_conversations_before_must_be_a_message_id(self, before):
        assert refused({"type": "conversations", "before": before}).code == "bad_request"

    def test_notification_read_all(self):
        assert parse({"type": "notification_read", "all": True}) == MarkNotificationRead(notification_id=None)

    def test_notification_read_one(self):
        assert parse({"type": "notification_read", "notificationId": 4}) == MarkNotificationRead(4)

    def test_notification_read_one_with_all_false(self):
        assert parse({"type": "notification_read", "notificationId": 4, "all": False}) == MarkNotificationRead(4)

    def test_notification_read_a_list_counts_repeats_once_in_the_order_named(self):
        command = parse({"type": "notification_read", "notificationIds": [9, 4, 9, 7]})
        assert command == MarkNotificationRead(notification_id=None, notification_ids=(9, 4, 7))

    def test_notification_read_a_list_of_the_most_ids_with_all_false(self):
        ids = list(range(1, MAX_READ_IDS + 1))
        command = parse({"type": "notification_read", "notificationIds": ids + [1], "all": False})
        assert command.notification_ids == tuple(ids)

    def test_ping(self):
        assert parse({"type": "ping"}) == Ping()

    def test_typing_defaults_to_true(self):
        assert parse({"type": "typing", "to": 2}) == Typing(to=2, typing=True)

    @pytest.mark.parametrize("typing", [True, False])
    def test_typing_started_or_stopped(self, typing):
        assert parse({"type": "typing", "to": 2, "typing": typing}) == Typing(to=2, typing=typing)

    def test_extra_fields_are_ignored(self):
        assert parse({"type": "ping", "extra": [1, {"a": None}]}) == Ping()

    def test_surrounding_whitespace_in_the_json_text(self):
        assert parse_frame('  \n{"type": "ping"}\t ') == Ping()

    def test_escaped_surrogate_pair_is_a_valid_character(self):
        command = parse_frame('{"type": "message", "to": 2, "content": "\\ud83d\\ude00"}')
        assert command.content == "😀"


# ================================================================ malformed frames


class TestMalformedFrames:
    @pytest.mark.parametrize(
        "text",
        ["", "   ", "{", "not json", '{"type": "ping",}', "{'type': 'ping'}", '{"type": "ping"} x', "\x00"],
    )
    def test_invalid_json(self, text):
        error = refused(text)
        assert error.code == "bad_request"
        assert error.ref == {}

    @pytest.mark.parametrize("text", ["[]", '["ping"]', "1", '"ping"', "null", "true", "1.5"])
    def test_json_that_is_not_an_object(self, text):
        error = refused(text)
        assert error.code == "bad_request"
        assert error.ref == {}

    @pytest.mark.parametrize(
        "frame", [{}, {"type": None}, {"type": 1}, {"type": True}, {"type": ["ping"]}, {"Type": "ping"}]
    )
    def test_missing_or_non_string_type(self, frame):
        error = refused(frame)
        assert error.code == "bad_request"
        assert error.ref == {}

    @pytest.mark.parametrize("frame_type", ["", "PING", "pong", "connected", "error", "messages", " ping"])
    def test_unknown_type(self, frame_type):
        error = refused({"type": frame_type, "clientMsgId": "c9"})
        assert error.code == "bad_request"
        assert error.ref == {"type": frame_type, "clientMsgId": "c9"}

    def test_unknown_type_message_is_bounded(self):
        error = refused({"type": "x" * 10_000})
        assert len(error.message) < 200

    def test_unknown_type_is_echoed_in_ref_cut_to_64_characters(self):
        """A 64 KiB `type` would otherwise come back whole in every `error` frame."""
        error = refused({"type": "é" * 60_000, "clientMsgId": "c9"})
        assert error.ref == {"type": "é" * MAX_REF_TYPE_CHARS, "clientMsgId": "c9"}
        assert len(error_frame(error.code, error.message, error.ref).encode("utf-8")) < 400

    def test_a_lone_surrogate_beyond_the_cut_does_not_hide_the_type(self):
        error = refused('{"type": "%s\\ud800"}' % ("t" * MAX_REF_TYPE_CHARS))
        assert error.ref == {"type": "t" * MAX_REF_TYPE_CHARS}

    BAD_IDS = [True, False, 1.0, 1.5, "1", "abc", -1, 0, MAX_ID + 1, 2**64, 10**30, [1], {"id": 1}, None]

    @pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
    @pytest.mark.parametrize(
        "frame, field",
        [
            ({"type": "message", "to": 2, "content": "x", "clientMsgId": "cm"}, "to"),
            ({"type": "message_read", "messageId": 1}, "messageId"),
            ({"type": "message_delete", "messageId": 1}, "messageId"),
            ({"type": "history", "with": 2}, "with"),
            ({"type": "notification_read", "notificationId": 1}, "notificationId"),
            ({"type": "typing", "to": 2}, "to"),
        ],
        ids=lambda value: value if isinstance(value, str) else value["type"],
    )
    def test_bad_required_id(self, frame, field, bad):
        error = refused({**frame, field: bad})
        assert error.code == "bad_request"
        assert error.ref["type"] == frame["type"]
        if "clientMsgId" in frame:
            assert error.ref["clientMsgId"] == frame["clientMsgId"]

    @pytest.mark.parametrize("bad", [b for b in BAD_IDS if b is not None], ids=repr)
    @pytest.mark.parametrize(
        "frame", [{"type": "history", "with": 2}, {"type": "notifications"}], ids=lambda frame: frame["type"]
    )
    def test_bad_optional_before(self, frame, bad):
        error = refused({**frame, "before": bad})
        assert error.code == "bad_request"
        assert error.ref == {"type": frame["type"]}

    @pytest.mark.parametrize("bad", [True, 1.0, 10.5, "10", -1, 0, [10]], ids=repr)
    @pytest.mark.parametrize(
        "frame", [{"type": "history", "with": 2}, {"type": "notifications"}], ids=lambda frame: frame["type"]
    )
    def test_bad_limit(self, frame, bad):
        assert refused({**frame, "limit": bad}).code == "bad_request"

    @pytest.mark.parametrize("typing", [None, 1, 0, "true", "false", [True], {"on": True}], ids=repr)
    def test_typing_flag_that_is_not_a_boolean(self, typing):
        error = refused({"type": "typing", "to": 2, "typing": typing})
        assert error.code == "bad_request"
        assert error.ref == {"type": "typing"}

    def test_id_as_huge_literal(self):
        error = refused('{"type": "message_read", "messageId": 99999999999999999999999999999999}')
        assert error.code == "bad_request"

    @pytest.mark.parametrize("content", ["", " ", "\n\t  \r\n", "\u3000", "\u00a0"], ids=repr)
    def test_empty_or_whitespace_content(self, content):
        error = refused({"type": "message", "to": 2, "content": content, "clientMsgId": "c1"})
        assert error.code == "bad_request"
        assert error.ref == {"type": "message", "clientMsgId": "c1"}

    def test_content_over_the_limit_is_too_large(self):
        content = "x" * (Limits().max_content_chars + 1)
        error = refused({"type": "message", "to": 2, "content": content, "clientMsgId": "big"})
        assert error.code == "too_large"
        assert error.ref == {"type": "message", "clientMsgId": "big"}

    @pytest.mark.parametrize("content", [None, 5, 1.5, True, ["hi"], {"text": "hi"}], ids=repr)
    def test_non_string_content(self, content):
        assert refused({"type": "message", "to": 2, "content": content}).code == "bad_request"

    def test_missing_content(self):
        assert refused({"type": "message", "to": 2}).code == "bad_request"

    def test_client_msg_id_over_64_chars(self):
        error = refused({"type": "message", "to": 2, "content": "x", "clientMsgId": "a" * 65})
        assert error.code == "bad_request"
        assert error.ref == {"type": "message"}  # an invalid clientMsgId is not echoed

    @pytest.mark.parametrize("client_msg_id", [5, 1.5, True, ["a"], {"a": 1}], ids=repr)
    def test_non_string_client_msg_id(self, client_msg_id):
        error = refused({"type": "message", "to": 2, "content": "x", "clientMsgId": client_msg_id})
        assert error.code == "bad_request"
        assert error.ref == {"type": "message"}

    @pytest.mark.parametrize("client_msg_id", ["", "   "], ids=repr)
    def test_empty_client_msg_id(self, client_msg_id):
        error = refused({"type": "message", "to": 2, "content": "x", "clientMsgId": client_msg_id})
        assert error.code == "bad_request"
        assert error.ref["type"] == "message"

    @pytest.mark.parametrize("escaped", ["\\ud800", "\\udfff", "a\\ud83db", "\\ude00\\ud83d"])
    def test_lone_surrogate_in_content(self, escaped):
        error = refused('{"type": "message", "to": 2, "content": "%s", "clientMsgId": "s1"}' % escaped)
        assert error.code == "bad_request"
        assert error.ref == {"type": "message", "clientMsgId": "s1"}

    def test_lone_surrogate_in_client_msg_id(self):
        error = refused('{"type": "message", "to": 2, "content": "x", "clientMsgId": "\\ud800"}')
        assert error.code == "bad_request"

    @pytest.mark.parametrize("text", ["[" * 100_000, "{\"a\":" * 100_000, '{"type": "ping", "x": ' + "[" * 100_000])
    def test_deeply_nested_json(self, text):
        error = refused(text)
        assert error.code == "bad_request"

    def test_deeply_nested_but_complete_json(self):
        depth = 50_000
        text = '{"type": "ping", "x": ' + "[" * depth + "]" * depth + "}"
        # either accepted (extra fields are ignored) or refused as bad_request, never a RecursionError
        try:
            assert parse_frame(text) == Ping()
        except FrameError as error:
            assert error.code == "bad_request"

    def test_5000_digit_number(self):
        assert refused("1" * 5000).code == "bad_request"

    def test_5000_digit_number_in_a_field(self):
        assert refused('{"type": "message_read", "messageId": %s}' % ("9" * 5000)).code == "bad_request"

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
    def test_non_finite_number_as_id(self, literal):
        assert refused('{"type": "message_read", "messageId": %s}' % literal).code == "bad_request"

    # ------------------------------------------------------------ connect

    @pytest.mark.parametrize(
        "user_id",
        [0, -1, "0", "-1", "abc", "", " 42", "4.2", 4.2, 42.0, True, False, [42], {"id": 42}]
        + [MAX_ID + 1, str(MAX_ID + 1)],
        ids=repr,
    )
    def test_connect_bad_user_id_is_unauthorized(self, user_id):
        error = refused({"type": "connect", "userId": user_id, "token": "t"})
        assert error.code == "unauthorized"
        assert error.ref == {"type": "connect"}

    @pytest.mark.parametrize("token", [5, True, ["t"], {"t": 1}], ids=repr)
    def test_connect_non_string_token_is_unauthorized(self, token):
        assert refused({"type": "connect", "userId": 1, "token": token}).code == "unauthorized"

    def test_connect_user_id_of_5000_digits_is_unauthorized(self):
        error = refused({"type": "connect", "userId": "1" * 5000, "token": "t"})
        assert error.code == "unauthorized"

    # ------------------------------------------------------------ notification_read

    def test_notification_read_with_neither(self):
        error = refused({"type": "notification_read"})
        assert error.code == "bad_request"
        assert error.ref == {"type": "notification_read"}

    @pytest.mark.parametrize("all_value", [1, "true", "yes", [], {}], ids=repr)
    def test_notification_read_all_must_be_true(self, all_value):
        assert refused({"type": "notification_read", "all": all_value}).code == "bad_request"

    def test_notification_read_all_false_alone(self):
        assert refused({"type": "notification_read", "all": False}).code == "bad_request"

    def test_notification_read_with_both_all_and_an_id_is_refused(self):
        assert refused({"type": "notification_read", "all": True, "notificationId": 4}).code == "bad_request"

    @pytest.mark.parametrize(
        "ids", [5, "1,2", [], [0], [-1], ["3"], [True], [1.5], [MAX_ID + 1], [[1]]], ids=repr
    )
    def test_notification_read_a_list_of_anything_but_ids_is_bad_request(self, ids):
        error = refused({"type": "notification_read", "notificationIds": ids})
        assert (error.code, error.ref) == ("bad_request", {"type": "notification_read"})

    @pytest.mark.parametrize("other", [{"notificationId": 4}, {"all": True}], ids=repr)
    def test_notification_read_a_list_with_an_id_or_all_is_bad_request(self, other):
        assert refused({"type": "notification_read", "notificationIds": [4], **other}).code == "bad_request"

    def test_notification_read_more_than_the_most_ids_is_too_large(self):
        error = refused({"type": "notification_read", "notificationIds": list(range(1, MAX_READ_IDS + 2))})
        assert (error.code, error.ref) == ("too_large", {"type": "notification_read"})


# ================================================================ refs


class TestRefs:
    def test_command_ref_of_message_with_client_msg_id(self):
        command = parse({"type": "message", "to": 2, "content": "x", "clientMsgId": "k"})
        assert command_ref(command) == {"type": "message", "clientMsgId": "k"}

    @pytest.mark.parametrize(
        "frame",
        [
            {"type": "connect"},
            {"type": "message", "to": 2, "content": "x"},
            {"type": "message_read", "messageId": 1},
            {"type": "history", "with": 1},
            {"type": "notifications"},
            {"type": "notification_read", "all": True},
            {"type": "ping"},
            {"type": "typing", "to": 2},
            {"type": "message_delete", "messageId": 1},
        ],
        ids=lambda frame: frame["type"],
    )
    def test_command_ref_names_the_frame_type(self, frame):
        assert command_ref(parse(frame)) == {"type": frame["type"]}

    def test_ref_of_a_refused_non_message_frame_keeps_its_client_msg_id(self):
        error = refused({"type": "history", "with": "x", "clientMsgId": "h1"})
        assert error.ref == {"type": "history", "clientMsgId": "h1"}

    def test_error_reply_to_a_lone_surrogate_client_msg_id_is_sendable(self):
        error = refused('{"type": "message", "to": 2, "content": "x", "clientMsgId": "\\ud800"}')
        assert error.ref == {"type": "message"}  # not echoed: it could not be sent back as UTF-8
        error_frame(error.code, error.message, error.ref).encode("utf-8")

    def test_error_reply_to_a_lone_surrogate_type_is_sendable(self):
        error = refused('{"type": "\\ud800", "clientMsgId": "ok"}')
        assert error.code == "bad_request"
        assert error.ref.get("type") != "\ud800"
        assert error.ref.get("clientMsgId") == "ok"
        error_frame(error.code, error.message, error.ref).encode("utf-8")


# ================================================================ server frames


class TestIsoTime:
    @pytest.mark.parametrize(
        "epoch_ms, expected",
        [
            (0, "1970-01-01T00:00:00.000Z"),
            (1, "1970-01-01T00:00:00.001Z"),
            (999, "1970-01-01T00:00:00.999Z"),
            (1000, "1970-01-01T00:00:01.000Z"),
            (1_795_673_125_123, "2026-11-26T06:05:25.123Z"),
            (1_795_673_125_999, "2026-11-26T06:05:25.999Z"),
            (1_795_673_125_005, "2026-11-26T06:05:25.005Z"),
            (1_795_673_125_050, "2026-11-26T06:05:25.050Z"),
            (1_795_673_125_000, "2026-11-26T06:05:25.000Z"),
            (946_684_799_999, "1999-12-31T23:59:59.999Z"),
        ],
    )
    def test_examples(self, epoch_ms, expected):
        assert iso_time(epoch_ms) == expected

    @settings(max_examples=200, deadline=None)
    @given(st.integers(min_value=0, max_value=253_402_300_799_999))  # up to 9999-12-31T23:59:59.999Z
    def test_matches_exact_integer_arithmetic(self, epoch_ms):
        exact = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=epoch_ms)
        expected = exact.strftime("%Y-%m-%dT%H:%M:%S.") + f"{exact.microsecond // 1000:03d}Z"
        assert iso_time(epoch_ms) == expected


def decoded(text: str) -> dict:
    assert isinstance(text, str)
    frame = json.loads(text)
    assert isinstance(frame, dict)
    return frame


T = 1_795_673_125_123
T_ISO = "2026-11-26T06:05:25.123Z"


class TestBuilders:
    def test_connected(self):
        frame = decoded(connected_frame(5, 2, 3))
        assert frame == {"type": "connected", "userId": 5, "unreadMessages": 2, "unreadNotifications": 3}

    def test_message_sent(self):
        frame = decoded(message_sent_frame(10, "c-1", 6, T))
        assert frame == {"type": "message_sent", "messageId": 10, "clientMsgId": "c-1", "to": 6, "createdAt": T_ISO}

    def test_message_sent_without_client_msg_id(self):
        assert decoded(message_sent_frame(10, None, 6, T))["clientMsgId"] is None

    def test_message(self):
        frame = decoded(message_frame(10, 5, 6, "hé 👋", T, "c-1"))
        assert frame == {
            "type": "message",
            "messageId": 10,
            "from": 5,
            "to": 6,
            "content": "hé 👋",
            "createdAt": T_ISO,
            "clientMsgId": "c-1",
        }

    def test_message_is_utf8_json_not_ascii_escaped(self):
        text = message_frame(10, 5, 6, "hé 👋", T, None)
        assert "hé 👋" in text
        text.encode("utf-8")

    def test_message_delivered(self):
        frame = decoded(message_delivered_frame(10, "c-1", T))
        assert frame == {"type": "message_delivered", "messageId": 10, "clientMsgId": "c-1", "deliveredAt": T_ISO}

    def test_message_read(self):
        frame = decoded(message_read_frame(10, 6, T))
        assert frame == {"type": "message_read", "messageId": 10, "readBy": 6, "readAt": T_ISO}

    def test_history(self):
        entries = [history_entry(1, 5, 6, "a", T, "read", False), history_entry(2, 6, 5, "b", T + 1, "sent", False)]
        frame = decoded(history_frame(6, entries))
        assert frame == {
            "type": "history",
            "with": 6,
            "messages": [
                {
                    "messageId": 1,
                    "from": 5,
                    "to": 6,
                    "content": "a",
                    "createdAt": T_ISO,
                    "status": "read",
                    "deleted": False,
                },
                {
                    "messageId": 2,
                    "from": 6,
                    "to": 5,
                    "content": "b",
                    "createdAt": "2026-11-26T06:05:25.124Z",
                    "status": "sent",
                    "deleted": False,
                },
            ],
        }

    def test_a_deleted_message_in_history_shows_no_content_whatever_it_is_given(self):
        entry = history_entry(3, 5, 6, "was there", T, "delivered", True)
        assert entry["deleted"] is True and entry["content"] == ""

    def test_message_deleted(self):
        frame = decoded(message_deleted_frame(10, T))
        assert frame == {"type": "message_deleted", "messageId": 10, "deletedAt": T_ISO}

    def test_empty_history(self):
        assert decoded(history_frame(6, [])) == {"type": "history", "with": 6, "messages": []}

    def test_conversations(self):
        entry = {"with": 6, "lastMessage": history_entry(3, 5, 6, "gone", T, "delivered", True), "unread": 2}
        assert decoded(conversations_frame([entry])) == {
            "type": "conversations",
            "conversations": [
                {
                    "with": 6,
                    "lastMessage": {
                        "messageId": 3,
                        "from": 5,
                        "to": 6,
                        "content": "",
                        "createdAt": T_ISO,
                        "status": "delivered",
                        "deleted": True,
                    },
                    "unread": 2,
                }
            ],
        }
        assert decoded(conversations_frame([])) == {"type": "conversations", "conversations": []}

    def test_notifications(self):
        entries = [
            notification_entry(8, "comment", 3, 40, 77, T, "someone commented", False),
            notification_entry(7, "like", 4, 40, None, T, "someone liked", True),
        ]
        frame = decoded(notifications_frame(entries))
        assert frame == {
            "type": "notifications",
            "notifications": [
                {
                    "notificationId": 8,
                    "notificationType": "comment",
                    "actorId": 3,
                    "postId": 40,
                    "commentId": 77,
                    "createdAt": T_ISO,
                    "text": "someone commented",
                    "read": False,
                },
                {
                    "notificationId": 7,
                    "notificationType": "like",
                    "actorId": 4,
                    "postId": 40,
                    "commentId": None,
                    "createdAt": T_ISO,
                    "text": "someone liked",
                    "read": True,
                },
            ],
        }

    def test_notification_read_one(self):
        frame = decoded(notification_read_frame(8, T))
        assert frame == {"type": "notification_read", "notificationId": 8, "readAt": T_ISO}

    def test_notification_read_all(self):
        frame = decoded(notification_read_frame(None, T))
        assert frame == {"type": "notification_read", "all": True, "readAt": T_ISO}

    def test_notification_read_a_list(self):
        frame = decoded(notification_read_frame(None, T, [9, 4]))
        assert frame == {"type": "notification_read", "notificationIds": [9, 4], "readAt": T_ISO}

    def test_pong(self):
        assert decoded(pong_frame()) == {"type": "pong"}

    @pytest.mark.parametrize("typing", [True, False])
    def test_typing(self, typing):
        assert decoded(typing_frame(7, typing)) == {"type": "typing", "from": 7, "typing": typing}

    def test_error_with_ref(self):
        frame = decoded(error_frame("too_large", "too long", {"type": "message", "clientMsgId": "c"}))
        assert frame == {
            "type": "error",
            "code": "too_large",
            "message": "too long",
            "ref": {"type": "message", "clientMsgId": "c"},
        }

    def test_error_without_ref_still_has_the_ref_field(self):
        frame = decoded(error_frame("bad_request", "frame is not valid JSON", {}))
        assert set(frame) == {"type", "code", "message", "ref"}

    def test_every_builder_uses_camel_case_field_names(self):
        texts = [
            connected_frame(1, 0, 0),
            message_sent_frame(1, "c", 2, T),
            message_frame(1, 1, 2, "x", T, "c"),
            message_delivered_frame(1, "c", T),
            message_read_frame(1, 2, T),
            history_frame(2, [history_entry(1, 1, 2, "x", T, "delivered", False)]),
            message_deleted_frame(1, T),
            notifications_frame([notification_entry(1, "post", 1, 2, None, T, "x", False)]),
            notification_read_frame(1, T),
            notification_read_frame(None, T),
            pong_frame(),
            typing_frame(1, True),
            error_frame("internal", "x", {"type": "ping"}),
        ]

        def keys(value):
            if isinstance(value, dict):
                for key, item in value.items():
                    yield key
                    yield from keys(item)
            elif isinstance(value, list):
                for item in value:
                    yield from keys(item)

        for text in texts:
            frame = decoded(text)
            assert isinstance(frame["type"], str)
            for key in keys(frame):
                assert "_" not in key and key[:1].islower(), (key, text)


# ================================================================ properties


def _assert_parses_or_refuses(text: str) -> None:
    try:
        command = parse_frame(text)
    except FrameError as error:
        assert error.code in CONTRACT_CODES
        assert isinstance(error.message, str)
        assert isinstance(error.ref, dict)
    else:
        assert isinstance(
            command,
            (
                Connect,
                SendMessage,
                MarkRead,
                FetchHistory,
                FetchNotifications,
                FetchConversations,
                MarkNotificationRead,
                Ping,
                Typing,
                Watch,
            ),
        )


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, -1, MAX_ID, MAX_ID + 1, 2**64])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["", " ", "42", "0", "-1", "a" * 65, "x" * 4001, "\ud800"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "to",
        "content",
        "clientMsgId",
        "messageId",
        "with",
        "before",
        "limit",
        "notificationId",
        "all",
        "userId",
        "token",
        "typing",
        "userIds",
    ]
)
frame_types = (
    st.sampled_from(CLIENT_TYPES)
    | st.sampled_from(["", "PING", "pong", "error", "\ud800"])
    | st.text(max_size=12)
    | json_values
)
frames_as_objects = st.builds(
    lambda frame_type, fields, extra: {**extra, **fields, "type": frame_type},
    frame_types,
    st.dictionaries(field_names, json_values, max_size=6),
    st.dictionaries(st.text(max_size=8), json_values, max_size=2),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_property_arbitrary_text(text):
    _assert_parses_or_refuses(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames_as_objects)
def test_property_arbitrary_json_objects(frame):
    _assert_parses_or_refuses(json.dumps(frame))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames_as_objects)
def test_property_every_error_reply_can_be_sent(frame):
    try:
        parse_frame(json.dumps(frame))
    except FrameError as error:
        reply = json.loads(error_frame(error.code, error.message, error.ref).encode("utf-8"))
        assert reply["type"] == "error" and reply["code"] == error.code


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames_as_objects)
def test_property_valid_command_fields_are_in_range(frame):
    try:
        command = parse_frame(json.dumps(frame))
    except FrameError:
        return
    for name in ("to", "message_id", "with_user", "before", "notification_id", "user_id"):
        value = getattr(command, name, None)
        if value is not None:
            assert type(value) is int and 1 <= value <= MAX_ID
    if isinstance(command, (FetchHistory, FetchNotifications)):
        assert 1 <= command.limit <= 100
    if isinstance(command, Typing):
        assert type(command.typing) is bool
    if isinstance(command, SendMessage):
        assert command.content.strip() and len(command.content) <= 4000
        command.content.encode("utf-8")
        assert command.client_msg_id is None or 1 <= len(command.client_msg_id) <= 64


# ---------------------------------------------------------------- reading a server frame's type for metrics

SERVER_FRAMES = {
    "error": lambda: frames_module.error_frame("bad_request", "no", {"type": "x"}),
    "connected": lambda: frames_module.connected_frame(1, 2, 3),
    "message_sent": lambda: frames_module.message_sent_frame(1, "c", 2, 0),
    "message": lambda: frames_module.message_frame(1, 2, 3, 'he said "type"', 0, None),
    "message_delivered": lambda: frames_module.message_delivered_frame(1, None, 0),
    "message_read": lambda: frames_module.message_read_frame(1, 2, 0),
    "history": lambda: frames_module.history_frame(2, []),
    "conversations": lambda: frames_module.conversations_frame([]),
    "notification": lambda: frames_module.notification_frame(1, "like", 2, 3, None, 0, "x", [2, 4]),
    "notifications": lambda: frames_module.notifications_frame([]),
    "notification_read": lambda: frames_module.notification_read_frame(None, 0),
    "pong": lambda: frames_module.pong_frame(),
    "typing": lambda: frames_module.typing_frame(1, False),
}


@pytest.mark.parametrize("expected", sorted(SERVER_FRAMES))
def test_frame_type_reads_the_type_every_server_frame_starts_with(expected):
    text = SERVER_FRAMES[expected]()
    assert frames_module.frame_type(text) == expected == json.loads(text)["type"]


@pytest.mark.parametrize("text", ["", "{}", '{"code":"x","type":"error"}', '{"type":"unterminated', "[]"])
def test_frame_type_of_anything_else_is_unknown(text):
    assert frames_module.frame_type(text) == "unknown"


def test_error_code_of_an_error_frame():
    assert frames_module.error_code(frames_module.error_frame("rate_limited", "slow down")) == "rate_limited"
    assert frames_module.error_code("not json") == "unknown"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet=st.characters(codec="utf-8")),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=20,
    )
)
def test_property_encode_writes_what_the_json_module_would(value):
    assert frames_module.encode({"type": "x", "value": value}) == json.dumps(
        {"type": "x", "value": value}, ensure_ascii=False, separators=(",", ":")
    )
