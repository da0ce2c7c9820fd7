"""JWT (HS256) tokens shared with the main web application.

Claims: `sub` is the user id (string or integer), `exp` is required.
"""

from __future__ import annotations

import time

import jwt

from protocol.frames import MAX_ID, id_from_text

ALGORITHM = "HS256"
TIME_CLAIMS = ("exp", "nbf", "iat")  # NumericDate claims (RFC 7519): JSON numbers


class InvalidToken(Exception):
    """The token is missing, malformed, expired, badly signed or names no valid user id."""


def verify_token(secret: str, token: str | None) -> int:
    """Return the user id the token was issued for, or raise `InvalidToken`."""
    if not token:
        raise InvalidToken("no token")
    try:
        # PyJWT insists that `sub` is a string; the contract allows an integer too.
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"], "verify_sub": False}
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from None
    except UnicodeError:  # a JSON string may hold a lone surrogate, which PyJWT cannot encode
        raise InvalidToken("the token is not valid text") from None
    for name in TIME_CLAIMS:
        # PyJWT checks these with int(), which also takes the string "9999999999"
        if name in claims and type(claims[name]) not in (int, float):
            raise InvalidToken(f"'{name}' must be a number")
    subject = claims["sub"]
    user_id = id_from_text(subject) if isinstance(subject, str) else subject
    if type(user_id) is not int or not 1 <= user_id <= MAX_ID:
        raise InvalidToken("'sub' is not a user id")
    return user_id


def mint_token(secret: str, user_id: int, ttl_seconds: float = 3600, now: float | None = None) -> str:
    """A token for `user_id` that expires `ttl_seconds` from now."""
    issued = time.time() if now is None else now
    claims = {"sub": str(user_id), "iat": int(issued), "exp": int(issued + ttl_seconds)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def authenticate(secret: str, token: str | None, claimed_user_id: int | None) -> int:
    """The user id a `connect` frame proves: its token's `sub`, which `userId` (if given) must equal."""
    user_id = verify_token(secret, token)
    if claimed_user_id is not None and claimed_user_id != user_id:
        raise InvalidToken("userId does not match the token")
    return user_id
