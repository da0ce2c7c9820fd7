"""`mint_token`: the HS256 JWT a page's browser client connects with, made with PyJWT.

The service checks `sub` (the user id) and `exp` with the `[auth] secret` it shares with the main
application.
"""

from __future__ import annotations

import time

import jwt


def mint_token(secret: str, user_id: int, ttl: float = 3600, now: float | None = None) -> str:
    """A token for `user_id` that the service accepts until `ttl` seconds from `now` (default: the clock)."""
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 1:
        raise ValueError(f"user_id must be a positive integer, not {user_id!r}")
    if not secret:
        raise ValueError("secret is empty: give the service's [auth] secret")
    issued = time.time() if now is None else now
    claims = {"sub": str(user_id), "iat": int(issued), "exp": int(issued + ttl)}
    return jwt.encode(claims, secret, algorithm="HS256")
