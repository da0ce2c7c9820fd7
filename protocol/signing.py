"""Signed notify requests: HMAC-SHA256 over the method, path, timestamp and body.

The main web application may send, instead of the shared secret itself,

    X-Notify-Timestamp: <Unix time in seconds>
    X-Notify-Signature: sha256=<hex HMAC-SHA256 of "METHOD\\nPATH\\nTIMESTAMP\\n" + body, keyed with the secret>

so the secret never travels, a captured request cannot be altered, and it
stops being accepted once its timestamp is older than the allowed skew.
"""

from __future__ import annotations

import hashlib
import hmac
import re

TIMESTAMP_HEADER = "X-Notify-Timestamp"
SIGNATURE_HEADER = "X-Notify-Signature"
SCHEME = "sha256="
# Unix seconds as plain ASCII digits without a leading zero: int() would also take "+17…", "017…", "1_7…" or
# other scripts' digits, several spellings of one signed timestamp
_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,15}")


class BadSignature(Exception):
    """The request's signature headers do not prove it; the message says why."""


def sign(secret: bytes, method: str, path: str, timestamp: int, body: bytes) -> str:
    """The `X-Notify-Signature` value for a request."""
    signed = f"{method.upper()}\n{path}\n{timestamp}\n".encode("utf-8") + body
    return SCHEME + hmac.new(secret, signed, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    method: str,
    path: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    max_skew: float,
) -> None:
    """Raise `BadSignature` unless `signature` signs this request and `timestamp` is within `max_skew` of `now`."""
    if not timestamp or not signature:
        raise BadSignature(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}")
    timestamp = timestamp.strip(" \t")  # the spaces HTTP allows around a header value
    if _TIMESTAMP.fullmatch(timestamp) is None:
        raise BadSignature(f"{TIMESTAMP_HEADER} must be Unix time in whole seconds, in plain digits")
    seconds = int(timestamp)
    expected = sign(secret, method, path, seconds, body)
    if not hmac.compare_digest(signature.strip().encode("utf-8"), expected.encode("utf-8")):
        raise BadSignature("signature does not match")
    if abs(now - seconds) > max_skew:
        raise BadSignature(f"timestamp is more than {max_skew:g} s away from the server's clock")
