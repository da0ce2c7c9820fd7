"""realtime-notify: the main web application's client for the real-time service's notify API.

`NotifyClient` posts, comments and likes; `mint_token` makes a page's token; errors are in `errors`.
"""

from realtime_notify.client import NotifyClient, NotifyResult, sign
from realtime_notify.errors import (
    BadRequest,
    Conflict,
    NotFound,
    NotifyError,
    NotifyTimeout,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from realtime_notify.tokens import mint_token

__version__ = "0.2.0"
__all__ = [
    "BadRequest",
    "Conflict",
    "NotFound",
    "NotifyClient",
    "NotifyError",
    "NotifyResult",
    "NotifyTimeout",
    "PayloadTooLarge",
    "Unauthorized",
    "Unavailable",
    "mint_token",
    "sign",
]
