"""What crosses nodes: `cluster.envelope` encodes a payload for a user's actor as bytes and back, and
`cluster.redis_pubsub` names a user's channel. Pure functions: no Redis, no server.
"""

from __future__ import annotations

import orjson
import pytest

from actors.messages import CloseAll, NotifyUsers, ToUser
from cluster.envelope import VERSION, EnvelopeError, decode, encode, origin_prefix
from cluster.redis_pubsub import channel_of, user_of
from routing import DeliverMessage, DeliverNotification, PushFrame
from storage import Message, Notification

ORIGIN = "3f2c9a0e5b7d4e1f8a6b2c4d0e9f1a3b"
UNICODE = 'grüße «quoted» "✓" 🎉 \n\t\\ 中文 \u2028 end'

MESSAGE = Message(
    id=41, sender_id=10_001, recipient_id=10_002, content=UNICODE, client_msg_id="c-1", created_at=1_795_000_000_123,
    status="sent",
)
NOTIFICATION = Notification(
    id=7, user_id=10_002, type="comment", actor_id=10_001, post_id=900, comment_id=901, created_at=1_795_000_000_456,
    text="zoë 🎉 commented on your post", read=False,
)


MESSAGE_FIELDS = {
    "id": 41, "sender_id": 10_001, "recipient_id": 10_002, "content": UNICODE, "client_msg_id": "c-1",
    "created_at": 1_795_000_000_123, "status": "sent", "deleted_at": None,
}


def envelope(**fields: object) -> bytes:
    return orjson.dumps({"origin": ORIGIN, "v": VERSION, **fields})


@pytest.mark.parametrize(
    "payload",
    [
        PushFrame('{"type":"message_read","messageId":41}'),
        PushFrame(UNICODE),
        DeliverMessage(MESSAGE),
        DeliverMessage(Message(42, 1, 2, "x" * 4000, None, 1, "delivered")),  # no clientMsgId, longest content
        DeliverNotification(NOTIFICATION, "zoë 🎉"),
        DeliverNotification(Notification(8, 2, "like", 1, 900, None, 1, "ann liked your post", True), "ann"),
    ],
    ids=["frame", "frame-unicode", "message", "message-no-client-id", "comment", "like-no-comment-id"],
)
def test_each_payload_round_trips_with_its_origin(payload: object) -> None:
    assert decode(encode(ORIGIN, payload)) == (ORIGIN, payload)


def test_a_frames_exclude_is_not_carried_because_it_names_a_socket_of_the_origin() -> None:
    _, payload = decode(encode(ORIGIN, PushFrame("text", exclude=12)))
    assert payload == PushFrame("text") and payload.exclude is None


def test_every_envelope_begins_with_its_origins_prefix_and_no_other() -> None:
    other = "0" * 32
    for payload in (PushFrame("x"), DeliverMessage(MESSAGE), DeliverNotification(NOTIFICATION, "n")):
        data = encode(ORIGIN, payload)
        assert data.startswith(origin_prefix(ORIGIN))
        assert not data.startswith(origin_prefix(other))
    assert not encode(ORIGIN + "0", PushFrame("x")).startswith(origin_prefix(ORIGIN))  # a longer origin


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b'"a string"',
        b"[1, 2]",
        b"null",
        envelope(kind="frame"),  # no text
        envelope(text="x"),  # no kind
        orjson.dumps({"v": 1, "kind": "frame", "text": "x"}),  # no origin
        envelope(kind="message", message=[1, 2, 3]),  # fields by position, as version 1 sent them
        envelope(kind="message", message=list(MESSAGE_FIELDS.values())),
        envelope(kind="message", message=5),
        envelope(kind="message", message={k: v for k, v in MESSAGE_FIELDS.items() if k != "status"}),  # a field short
        envelope(kind="message", message={**MESSAGE_FIELDS, "priority": 1}),  # a field this version does not know
        envelope(kind="notification", notification={"id": 7}),
        envelope(kind="notification", notification=NOTIFICATION),  # no actorName
    ],
)
def test_malformed_bytes_raise_envelope_error(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode(data)


def test_an_unknown_kind_raises_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="kind"):
        decode(envelope(kind="telepathy", text="x"))


def test_records_travel_as_objects_keyed_by_field_name_in_any_order() -> None:
    data = encode(ORIGIN, DeliverMessage(MESSAGE))
    assert orjson.loads(data)["message"] == MESSAGE_FIELDS
    reordered = dict(reversed(MESSAGE_FIELDS.items()))
    assert decode(envelope(kind="message", message=reordered)) == (ORIGIN, DeliverMessage(MESSAGE))
    notification = orjson.loads(encode(ORIGIN, DeliverNotification(NOTIFICATION, "zoë")))["notification"]
    assert notification == {
        "id": 7, "user_id": 10_002, "type": "comment", "actor_id": 10_001, "post_id": 900, "comment_id": 901,
        "created_at": 1_795_000_000_456, "text": "zoë 🎉 commented on your post", "read": False,
    }


@pytest.mark.parametrize("version", [0, 1, 3, "2", None])
def test_an_unknown_version_raises_envelope_error(version: object) -> None:
    data = orjson.dumps({"origin": ORIGIN, "v": version, "kind": "frame", "text": "x"})
    with pytest.raises(EnvelopeError, match="version"):
        decode(data)


def test_a_missing_version_raises_envelope_error() -> None:
    with pytest.raises(EnvelopeError, match="version"):
        decode(orjson.dumps({"origin": ORIGIN, "kind": "frame", "text": "x"}))


@pytest.mark.parametrize(
    "payload",
    [CloseAll(1001, "server shutting down"), ToUser(1, PushFrame("x")), NotifyUsers((NOTIFICATION,), "n"), "text"],
    ids=["close-all", "to-user", "notify-users", "str"],
)
def test_a_payload_that_stays_on_its_node_raises_type_error(payload: object) -> None:
    with pytest.raises(TypeError):
        encode(ORIGIN, payload)


def test_a_users_channel_names_the_user() -> None:
    assert channel_of(42) == "realtime:user:42"
    for user_id in (1, 42, 10_000, 2**53):
        assert user_of(channel_of(user_id)) == user_id
        assert user_of(channel_of(user_id).encode()) == user_id  # redis-py hands channels over as bytes


@pytest.mark.parametrize(
    "channel", ["realtime:node:3f2c", b"realtime:node:3f2c", "realtime:user:", "realtime:user:abc", "other:42", ""]
)
def test_any_other_channel_names_no_user(channel: str | bytes) -> None:
    assert user_of(channel) is None
