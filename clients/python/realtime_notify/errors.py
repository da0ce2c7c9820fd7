"""What a notify call raises: one class per answer the caller handles differently, under `NotifyError`.

    NotifyError                 any refusal or failure; `status` (None without an HTTP answer) and `message`
    ├── BadRequest              400: missing or ill-typed fields; fix the call, do not retry
    ├── Unauthorized            401: wrong or missing X-Notify-Secret, or a bad signature (clock skew?)
    ├── NotFound                404: the post is unknown to the service (the platform's `posts` table)
    ├── Conflict                409: this Idempotency-Key was already used with another body
    ├── PayloadTooLarge         413: the body is over the service's [limits] max_body_bytes
    └── Unavailable             503, or no answer, still so after every retry; safe to retry later
        └── NotifyTimeout       no answer within the client's timeout
"""

from __future__ import annotations


class NotifyError(Exception):
    """The notify API refused or failed the call; `status` is the HTTP status, None without an answer."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.message = message
        self.status = status
        self.idempotency_key: str | None = None  # the call's key: a later retry with it is stored once


class BadRequest(NotifyError):
    """400: the service found a field missing or ill-typed."""


class Unauthorized(NotifyError):
    """401: the secret or the request's signature was not accepted."""


class NotFound(NotifyError):
    """404: the post does not exist."""


class Conflict(NotifyError):
    """409: the Idempotency-Key was used before with a different body."""


class PayloadTooLarge(NotifyError):
    """413: the body is larger than the service accepts."""


class Unavailable(NotifyError):
    """503 or no answer, after the retries: nothing is known to be stored; retry later with the same key."""


class NotifyTimeout(Unavailable):
    """The service did not answer within the timeout, after the retries."""


BY_STATUS: dict[int, type[NotifyError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    503: Unavailable,
}
