"""What one node publishes to another: a payload for a user's actor, as bytes, and back.

Pure functions, so the wire format between nodes is tested without Redis.
Only the payloads that reach users cross nodes: a frame to push, a stored
chat message to deliver, a stored notification to push. A record travels as
a JSON object keyed by its field names and is rebuilt by keyword, so adding
or reordering a field never shifts another's value.
"""

from __future__ import annotations

from typing import Any

import orjson

from routing import DeliverMessage, DeliverNotification, PushFrame, UserPayload
from storage import Message, Notification

VERSION = 2  # 1 carried records as arrays in field order; nodes of different versions drop each other's pushes


class EnvelopeError(ValueError):
    """Bytes that are not an envelope this version understands."""


def encode(origin: str, payload: UserPayload) -> bytes:
    """`payload` published by the node instance `origin`. Raises TypeError for a payload that stays local."""
    # orjson writes a dataclass as an object keyed by its field names
    match payload:
        case PushFrame(text=text):
            body: dict[str, Any] = {"kind": "frame", "text": text}  # `exclude` names a socket of the origin only
        case DeliverMessage(message=message):
            body = {"kind": "message", "message": message}
        case DeliverNotification(notification=notification, actor_name=actor_name):
            body = {"kind": "notification", "notification": notification, "actorName": actor_name}
        case _:
            raise TypeError(f"{type(payload).__name__} is not published to other nodes")
    return orjson.dumps({"origin": origin, "v": VERSION, **body})


def origin_prefix(origin: str) -> bytes:
    """How every envelope `origin` publishes begins: its own come back to it, and are skipped unparsed."""
    return orjson.dumps({"origin": origin})[:-1] + b","


def decode(data: bytes) -> tuple[str, UserPayload]:
    """(origin, payload) of an envelope; raises EnvelopeError for anything else."""
    try:
        body = orjson.loads(data)
        if body.get("v") != VERSION:
            raise EnvelopeError(f"unknown envelope version {body.get('v')!r}")
        origin = body["origin"]
        match body["kind"]:
            case "frame":
                payload: UserPayload = PushFrame(text=body["text"])
            case "message":
                payload = DeliverMessage(message=Message(**body["message"]))
            case "notification":
                payload = DeliverNotification(
                    notification=Notification(**body["notification"]), actor_name=body["actorName"]
                )
            case kind:
                raise EnvelopeError(f"unknown envelope kind {kind!r}")
    except EnvelopeError:
        raise
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError) as error:
        raise EnvelopeError(f"malformed envelope: {error}") from None
    return origin, payload
