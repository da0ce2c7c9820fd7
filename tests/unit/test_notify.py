"""Pure tests of the notify API's request parsing, notification texts and the `notification` frame.

No server, no database: `protocol.notify` and `protocol.frames` are plain functions.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from protocol.frames import MAX_ID, notification_frame
from protocol.notify import (
    KINDS,
    MAX_IDEMPOTENCY_KEY_CHARS,
    NotifyRequest,
    NotifyRequestError,
    display_name,
    idempotency_key,
    notification_text,
    parse_notify_request,
    request_hash,
)

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

VALID = {
    "post": {"postId": 7, "userId": 3},
    "comment": {"postId": 7, "userId": 3, "commentId": 11},
    "like": {"postId": 7, "userId": 3},
}

# values no id field accepts, JSON-typed and form-typed alike
BAD_IDS: list[Any] = [
    0,
    -1,
    "0",
    "-1",
    "+5",
    "5.0",
    "1e3",
    "0x10",
    "abc",
    "12abc",
    "1 2",
    "\u0661\u0662",  # Arabic-Indic digits: isdigit() but not ASCII
    "\uff11",  # fullwidth 1
    1.5,
    7.0,
    float("nan"),
    float("inf"),
    True,
    False,
    [7],
    {"id": 7},
    MAX_ID + 1,
    2**64,
    -(2**63),
    str(MAX_ID + 1),
    "9" * 20,
    "1" * 5000,  # never parsed as a huge integer
    " ",
]


def _without(fields: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k != name}


# ---------------------------------------------------------------- valid requests


@pytest.mark.parametrize("kind", KINDS)
def test_valid_json_request_parses(kind: str) -> None:
    parsed = parse_notify_request(kind, VALID[kind])
    assert parsed == NotifyRequest(kind, 7, 3, 11 if kind == "comment" else None, None)


@pytest.mark.parametrize("kind", KINDS)
def test_ids_as_decimal_strings_parse_like_integers(kind: str) -> None:
    as_strings = {k: str(v) for k, v in VALID[kind].items()}
    assert parse_notify_request(kind, as_strings) == parse_notify_request(kind, VALID[kind])


def test_string_ids_may_have_surrounding_whitespace_and_leading_zeros() -> None:
    parsed = parse_notify_request("comment", {"postId": " 7 ", "userId": "003", "commentId": "11\n"})
    assert (parsed.post_id, parsed.actor_id, parsed.comment_id) == (7, 3, 11)


def test_largest_id_is_accepted_as_integer_and_as_string() -> None:
    parsed = parse_notify_request("post", {"postId": MAX_ID, "userId": str(MAX_ID)})
    assert (parsed.post_id, parsed.actor_id) == (MAX_ID, MAX_ID)


def test_unknown_extra_fields_are_ignored() -> None:
    parsed = parse_notify_request("like", {**VALID["like"], "whatever": [1, 2], "type": "x"})
    assert parsed == NotifyRequest("like", 7, 3, None, None)


@pytest.mark.parametrize("kind", ["comment", "like"])
@pytest.mark.parametrize("owner", [9, "9", " 9 "])
def test_post_owner_id_is_taken_for_comment_and_like(kind: str, owner: Any) -> None:
    assert parse_notify_request(kind, {**VALID[kind], "postOwnerId": owner}).post_owner_id == 9


@pytest.mark.parametrize("kind", ["comment", "like"])
@pytest.mark.parametrize("owner", [None, ""])
def test_empty_post_owner_id_counts_as_absent(kind: str, owner: Any) -> None:
    assert parse_notify_request(kind, {**VALID[kind], "postOwnerId": owner}).post_owner_id is None


@pytest.mark.parametrize("owner", [9, "9", "not a number", True, -4, 1.5])
def test_post_owner_id_is_ignored_for_post(owner: Any) -> None:
    assert parse_notify_request("post", {**VALID["post"], "postOwnerId": owner}).post_owner_id is None


@pytest.mark.parametrize("kind", ["post", "like"])
@pytest.mark.parametrize("comment", [11, "11", "garbage", True, None])
def test_comment_id_is_only_required_and_kept_for_comment(kind: str, comment: Any) -> None:
    parsed = parse_notify_request(kind, {**VALID[kind], "commentId": comment})
    assert parsed.comment_id is None


def test_unknown_kind_is_a_programming_error_not_a_400() -> None:
    with pytest.raises(ValueError) as raised:
        parse_notify_request("share", {"postId": 1, "userId": 2})
    assert not isinstance(raised.value, NotifyRequestError)


# ---------------------------------------------------------------- refused requests


def _required_fields(kind: str) -> list[str]:
    return list(VALID[kind])


@pytest.mark.parametrize(("kind", "field"), [(kind, field) for kind in KINDS for field in _required_fields(kind)])
@pytest.mark.parametrize("absent", ["missing", None, ""])
def test_missing_required_field_is_refused_naming_it(kind: str, field: str, absent: Any) -> None:
    fields = _without(VALID[kind], field)
    if absent != "missing":
        fields[field] = absent
    with pytest.raises(NotifyRequestError, match=field):
        parse_notify_request(kind, fields)


@pytest.mark.parametrize(("kind", "field"), [(kind, field) for kind in KINDS for field in _required_fields(kind)])
@pytest.mark.parametrize("value", BAD_IDS, ids=lambda v: repr(v)[:20])
def test_ill_typed_required_field_is_refused_naming_it(kind: str, field: str, value: Any) -> None:
    with pytest.raises(NotifyRequestError, match=field):
        parse_notify_request(kind, {**VALID[kind], field: value})


@pytest.mark.parametrize("kind", ["comment", "like"])
@pytest.mark.parametrize("value", BAD_IDS, ids=lambda v: repr(v)[:20])
def test_ill_typed_post_owner_id_is_refused_naming_it(kind: str, value: Any) -> None:
    with pytest.raises(NotifyRequestError, match="postOwnerId"):
        parse_notify_request(kind, {**VALID[kind], "postOwnerId": value})


def test_empty_body_names_post_id_first() -> None:
    for kind in KINDS:
        with pytest.raises(NotifyRequestError, match="postId"):
            parse_notify_request(kind, {})


def test_every_refusal_message_is_one_short_line() -> None:
    with pytest.raises(NotifyRequestError) as raised:
        parse_notify_request("post", {"postId": "1" * 5000, "userId": 1})
    message = str(raised.value)
    assert "postId" in message and "\n" not in message and len(message) < 200


# ---------------------------------------------------------------- texts


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("post", "alice published a new post"),
        ("comment", "alice commented on your post"),
        ("like", "alice liked your post"),
    ],
)
def test_single_actor_texts(kind: str, expected: str) -> None:
    assert notification_text(kind, "alice") == expected
    assert notification_text(kind, "alice", others=0) == expected


@pytest.mark.parametrize(
    ("others", "expected"),
    [
        (1, "erin and 1 other liked your post"),
        (2, "erin and 2 others liked your post"),
        (99, "erin and 99 others liked your post"),
    ],
)
def test_grouped_like_texts_are_singular_and_plural(others: int, expected: str) -> None:
    assert notification_text("like", "erin", others) == expected


def test_grouped_texts_of_other_kinds() -> None:
    assert notification_text("comment", "bob", 1) == "bob and 1 other commented on your post"
    assert notification_text("post", "bob", 3) == "bob and 3 others published a new post"


def test_display_name_falls_back_to_the_user_id() -> None:
    assert display_name("alice", 42) == "alice"
    assert display_name(None, 42) == "User 42"
    assert display_name("", 42) == "User 42"
    assert notification_text("like", display_name(None, 42)) == "User 42 liked your post"


def test_texts_keep_unicode_names() -> None:
    assert notification_text("like", "zoë 🎉") == "zoë 🎉 liked your post"


# ---------------------------------------------------------------- the notification frame


def _frame(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return json.loads(notification_frame(*args, **kwargs))


CREATED_AT = 1_795_500_325_123  # 2026-11-24T06:05:25.123Z


@pytest.mark.parametrize("kind", ["post", "like"])
def test_frame_of_post_and_like_has_no_comment_id(kind: str) -> None:
    frame = _frame(5, kind, 3, 7, None, CREATED_AT, notification_text(kind, "alice"))
    assert frame == {
        "type": "notification",
        "notificationId": 5,
        "notificationType": kind,
        "actorId": 3,
        "postId": 7,
        "createdAt": frame["createdAt"],
        "text": notification_text(kind, "alice"),
    }
    assert ISO_MS.match(frame["createdAt"]) and frame["createdAt"] == "2026-11-24T06:05:25.123Z"


def test_frame_of_comment_has_comment_id() -> None:
    frame = _frame(5, "comment", 3, 7, 11, CREATED_AT, "alice commented on your post")
    assert frame["commentId"] == 11
    assert set(frame) == {
        "type",
        "notificationId",
        "notificationType",
        "actorId",
        "postId",
        "commentId",
        "createdAt",
        "text",
    }
    assert "count" not in frame and "actorIds" not in frame


def test_frame_ignores_a_comment_id_given_for_a_like() -> None:
    assert "commentId" not in _frame(5, "like", 3, 7, 11, CREATED_AT, "x")


def test_ungrouped_frame_has_no_count_or_actor_ids() -> None:
    frame = _frame(5, "like", 3, 7, None, CREATED_AT, "x")
    assert "count" not in frame and "actorIds" not in frame


def test_grouped_frame_has_count_and_actor_ids_in_the_given_order() -> None:
    frame = _frame(9, "like", 4, 7, None, CREATED_AT, "erin and 2 others liked your post", [4, 2, 3])
    assert frame["count"] == 3
    assert frame["actorIds"] == [4, 2, 3]
    assert frame["actorId"] == 4
    assert "commentId" not in frame


def test_grouped_frame_lists_the_notification_ids_it_stands_for() -> None:
    frame = _frame(9, "like", 4, 7, None, CREATED_AT, "erin and 1 other liked your post", [4, 2], [9, 8])
    assert frame["notificationIds"] == [9, 8] and frame["notificationId"] == 9 and frame["count"] == 2


def test_frame_of_one_actor_standing_for_several_likes_has_ids_but_no_actor_ids() -> None:
    frame = _frame(9, "like", 4, 7, None, CREATED_AT, "erin liked your post", None, [9, 8])
    assert frame["notificationIds"] == [9, 8]
    assert "count" not in frame and "actorIds" not in frame


def test_frame_is_compact_utf8_json() -> None:
    text = notification_frame(1, "like", 2, 3, None, CREATED_AT, "zoë liked your post")
    assert "zoë" in text and " " not in text.replace("zoë liked your post", "")


@pytest.mark.parametrize(
    "fields",
    [("post", 3, 7, None, "alice posted"), ("comment", 3, 7, 11, 'zoë 🎉 "commented"'), ("like", 3, 7, None, "x")],
)
def test_a_frame_from_the_shared_template_is_byte_for_byte_the_frame_encoded_whole(fields: tuple) -> None:
    """A fan-out encodes a frame's tail once and puts each follower's id before it: the bytes must be exactly
    those of the whole frame encoded for that follower, for every id and kind."""
    kind, actor_id, post_id, comment_id, text = fields
    for notification_id in (1, 42, MAX_ID):
        frame = {"type": "notification", "notificationId": notification_id, "notificationType": kind}
        frame.update({"actorId": actor_id, "postId": post_id})
        if kind == "comment":
            frame["commentId"] = comment_id
        frame.update({"createdAt": "2026-11-24T06:05:25.123Z", "text": text})
        whole = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
        assert notification_frame(notification_id, kind, actor_id, post_id, comment_id, CREATED_AT, text) == whole


# ---------------------------------------------------------------- Idempotency-Key and request hashes


def test_no_idempotency_key_is_none() -> None:
    assert idempotency_key(None) is None


@pytest.mark.parametrize("key", ["k", "0f8e3c7a-5b6d-4e1f-9a2b-3c4d5e6f7a8b", "x" * MAX_IDEMPOTENCY_KEY_CHARS, "a b"])
def test_idempotency_key_of_printable_ascii_up_to_the_limit(key: str) -> None:
    assert idempotency_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * (MAX_IDEMPOTENCY_KEY_CHARS + 1), "tab\there", "clé"], ids=repr)
def test_idempotency_key_empty_too_long_or_not_printable_ascii_is_refused(key: str) -> None:
    with pytest.raises(NotifyRequestError, match="Idempotency-Key"):
        idempotency_key(key)


def test_requests_asking_the_same_hash_the_same_however_sent() -> None:
    as_json = parse_notify_request("comment", {"postId": 7, "userId": 3, "commentId": 11})
    as_form = parse_notify_request("comment", {"postId": "7", "userId": "3", "commentId": "11", "extra": "x"})
    assert request_hash(as_json) == request_hash(as_form)
    assert len(request_hash(as_json)) == 64


@pytest.mark.parametrize(
    "other",
    [
        NotifyRequest("like", 7, 3),
        NotifyRequest("comment", 7, 3, 12),
        NotifyRequest("comment", 8, 3, 11),
        NotifyRequest("comment", 7, 4, 11),
        NotifyRequest("comment", 7, 3, 11, 5),
    ],
)
def test_requests_asking_otherwise_hash_otherwise(other: NotifyRequest) -> None:
    assert request_hash(NotifyRequest("comment", 7, 3, 11)) != request_hash(other)
