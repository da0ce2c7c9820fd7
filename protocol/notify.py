"""The HTTP notify API's requests and notification texts, as pure functions.

`parse_notify_request(kind, fields)` validates the body of `/notify/<kind>`
(JSON values or form strings alike) and raises `NotifyRequestError` naming
the bad field; `idempotency_key` checks the `Idempotency-Key` header and
`request_hash` says when two requests are the same; `notification_text`
builds the sentence a user reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import astuple, dataclass
from typing import Any, Mapping

from protocol.frames import MAX_ID, id_from_text

KINDS = ("post", "comment", "like")
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_CHARS = 128


class NotifyRequestError(Exception):
    """The request body is missing a field or has one of the wrong type (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class NotifyRequest:
    kind: str  # post, comment or like
    post_id: int
    actor_id: int  # the author, commenter or liker (`userId`)
    comment_id: int | None = None
    post_owner_id: int | None = None


def parse_notify_request(kind: str, fields: Mapping[str, Any]) -> NotifyRequest:
    """Validate a notify body; ids may be JSON integers or decimal strings (form bodies)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    post_id = _required_id(fields, "postId")
    actor_id = _required_id(fields, "userId")
    comment_id = _required_id(fields, "commentId") if kind == "comment" else None
    owner_id = _optional_id(fields, "postOwnerId") if kind != "post" else None
    return NotifyRequest(kind, post_id, actor_id, comment_id, owner_id)


def idempotency_key(header: str | None) -> str | None:
    """The `Idempotency-Key` header's value, or None without one; raises `NotifyRequestError` for an empty one,
    one over MAX_IDEMPOTENCY_KEY_CHARS, or one with characters other than printable ASCII (UUIDs and the like)."""
    if header is None:
        return None
    if not header:
        raise NotifyRequestError(f"{IDEMPOTENCY_HEADER} must not be empty")
    if len(header) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise NotifyRequestError(f"{IDEMPOTENCY_HEADER} is longer than {MAX_IDEMPOTENCY_KEY_CHARS} characters")
    if not (header.isascii() and header.isprintable()):
        raise NotifyRequestError(f"{IDEMPOTENCY_HEADER} must be printable ASCII")
    return header


def request_hash(request: NotifyRequest) -> str:
    """A digest of what a request asks for: repeats that ask the same (as JSON or as a form) have the same one."""
    return hashlib.sha256(repr(astuple(request)).encode("ascii")).hexdigest()


def _required_id(fields: Mapping[str, Any], name: str) -> int:
    if fields.get(name) in (None, ""):
        raise NotifyRequestError(f"{name} is required")
    value = _optional_id(fields, name)
    assert value is not None
    return value


def _optional_id(fields: Mapping[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if type(value) is int and 1 <= value <= MAX_ID:
        return value
    if isinstance(value, str) and (parsed := id_from_text(value.strip())) is not None:
        return parsed
    raise NotifyRequestError(f"{name} must be a positive integer id")


def notification_text(kind: str, actor_name: str, others: int = 0) -> str:
    """"alice liked your post"; with `others`, "alice and 3 others liked your post"."""
    who = actor_name
    if others:
        who = f"{actor_name} and {others} other{'s' if others > 1 else ''}"
    if kind == "post":
        return f"{who} published a new post"
    if kind == "comment":
        return f"{who} commented on your post"
    return f"{who} liked your post"


def display_name(username: str | None, user_id: int) -> str:
    """The actor's username, or a stand-in when the platform does not know the user."""
    return username if username else f"User {user_id}"
