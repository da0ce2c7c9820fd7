"""What one node publishes to another: a payload for a user's actor, as bytes, and back.

Pure functions, so the wire format between nodes is tested without Redis.
Only the payloads that reach users cross nodes: a frame to push, a stored
chat message to deliver, a stored notification to push.
"""

from __future__ import annotations

from typing import Any

import orjson

from routing import DeliverMessage, DeliverNotification, PushFrame
from storage import Message, Notification

VERSION = 1


class EnvelopeError(ValueError):
    """Bytes that are not an envelope this version understands."""


def encode(origin: str, payload: Any) -> bytes:
    """`payload` published by the node instance `origin`. Raises TypeError for a payload that stays local."""
    match payload:
        case PushFrame(text=text):
            body: dict[str, Any] = {"kind": "frame", "text": text}  # `exclude` names a socket of the origin only
        case DeliverMessage(message=m):
            body = {
                "kind": "message",
                "message": [m.id, m.sender_id, m.recipient_id, m.content, m.client_msg_id, m.created_at, m.status],
            }
        case DeliverNotification(notification=n, actor_name=actor_name):
            body = {
                "kind": "notification",
                "notification": [n.id, n.user_id, n.type, n.actor_id, n.post_id, n.comment_id, n.created_at, n.text,
                                 n.read],
                "actorName": actor_name,
            }
        case _:
            raise TypeError(f"{type(payload).__name__} is not published to other nodes")
    return orjson.dumps({"origin": origin, "v": VERSION, **body})


def origin_prefix(origin: str) -> bytes:
    """How every envelope `origin` publishes begins: its own come back to it, and are skipped unparsed."""
    return orjson.dumps({"origin": origin})[:-1] + b","


def decode(data: bytes) -> tuple[str, Any]:
    """(origin, payload) of an envelope; raises EnvelopeError for anything else."""
    try:
        body = orjson.loads(data)
        if body.get("v") != VERSION:
            raise EnvelopeError(f"unknown envelope version {body.get('v')!r}")
        origin = body["origin"]
        match body["kind"]:
            case "frame":
                payload: Any = PushFrame(body["text"])
            case "message":
                payload = DeliverMessage(Message(*body["message"]))
            case "notification":
                payload = DeliverNotification(Notification(*body["notification"]), body["actorName"])
            case kind:
                raise EnvelopeError(f"unknown envelope kind {kind!r}")
    except EnvelopeError:
        raise
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError) as error:
        raise EnvelopeError(f"malformed envelope: {error}") from None
    return origin, payload
