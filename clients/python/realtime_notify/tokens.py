"""`mint_token`: the HS256 JWT a page's browser client connects with, made with the standard library.

The service checks `sub` (the user id) and `exp` with the `[auth] secret` it shares with the main
application; a dozen lines of hmac and base64 spare the main application a dependency for this.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

_HEADER = {"alg": "HS256", "typ": "JWT"}


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(value: dict) -> str:
    return _segment(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def mint_token(secret: str, user_id: int, ttl: float = 3600, now: float | None = None) -> str:
    """A token for `user_id` that the service accepts until `ttl` seconds from `now` (default: the clock)."""
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 1:
        raise ValueError(f"user_id must be a positive integer, not {user_id!r}")
    if not secret:
        raise ValueError("secret is empty: give the service's [auth] secret")
    issued = time.time() if now is None else now
    claims = {"sub": str(user_id), "iat": int(issued), "exp": int(issued + ttl)}
    signing_input = f"{_json_segment(_HEADER)}.{_json_segment(claims)}"
    signature = hmac.new(secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_segment(signature)}"
