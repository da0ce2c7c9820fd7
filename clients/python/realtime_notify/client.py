"""`NotifyClient`: the notify API's three calls, authenticated, with a timeout and retries that store once.

Every logical call carries one `Idempotency-Key` (made per call unless the caller gives one) and every
retry of it repeats that key, so a call retried after a lost answer or a 503 is stored once by the
service. Retried: no answer (connection refused or reset, timeout) and 503, not sooner than a 503's
`Retry-After` asks; every other answer is final.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from realtime_notify.errors import BY_STATUS, NotifyError, NotifyTimeout, Unavailable

MAX_IDEMPOTENCY_KEY = 128  # characters, the contract's limit
SECRET_HEADER = "X-Notify-Secret"
TIMESTAMP_HEADER = "X-Notify-Timestamp"
SIGNATURE_HEADER = "X-Notify-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class NotifyResult:
    """The service's answer: users notified (stored for each), and how many of them had a socket open."""

    recipients: int
    online: int
    idempotency_key: str


def sign(secret: bytes, method: str, path: str, timestamp: int, body: bytes) -> str:
    """The `X-Notify-Signature` value: HMAC-SHA256 of "METHOD\\nPATH\\nTIMESTAMP\\n" + body, keyed with the secret."""
    signed = f"{method.upper()}\n{path}\n{timestamp}\n".encode("utf-8") + body
    return "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()


class NotifyClient:
    """Calls `POST /notify/*` on the service's HTTP API port (`base_url`, e.g. "http://127.0.0.1:8081").

    Authentication: `signing_secret` signs each request with the `[notify] secret` (it never travels, a
    captured request cannot be altered or replayed after the allowed clock skew); `secret` sends it as
    `X-Notify-Secret` instead; neither suits a service with no secret, which answers loopback callers only.
    `timeout` bounds each attempt's connect and each read, in seconds; after a failed attempt the client
    waits `backoff * 2**attempt` seconds, capped at `max_backoff`, with jitter in the upper half (or longer
    if a 503's `Retry-After` asks, up to `max_backoff`), and tries again, `retries` times at most. It keeps no
    connection or other state between calls: one client may serve every thread or greenlet of the application.
    """

    def __init__(
        self,
        base_url: str,
        secret: str | None = None,
        signing_secret: str | None = None,
        timeout: float = 5,
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"base_url must be http(s)://host:port[/prefix], not {base_url!r}")
        if secret and signing_secret:
            raise ValueError("give secret or signing_secret, not both")
        if retries < 0 or timeout <= 0 or backoff < 0:
            raise ValueError("retries and backoff must not be negative, timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self._origin = (parts.scheme, parts.netloc)
        self._path_prefix = parts.path.rstrip("/")
        self._secret = secret
        self._signing_secret = signing_secret.encode("utf-8") if signing_secret else None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._clock = clock

    def post(self, post_id: int, user_id: int, *, idempotency_key: str | None = None) -> NotifyResult:
        """User `user_id` published post `post_id`: every follower is notified."""
        return self._call("post", {"postId": post_id, "userId": user_id}, idempotency_key)

    def comment(
        self,
        post_id: int,
        user_id: int,
        comment_id: int,
        post_owner_id: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> NotifyResult:
        """User `user_id` commented (`comment_id`) on post `post_id`: its owner is notified, unless that is them."""
        fields = {"postId": post_id, "userId": user_id, "commentId": comment_id}
        return self._call("comment", _with_owner(fields, post_owner_id), idempotency_key)

    def like(
        self, post_id: int, user_id: int, post_owner_id: int | None = None, *, idempotency_key: str | None = None
    ) -> NotifyResult:
        """User `user_id` liked post `post_id`: its owner is notified, unless that is them."""
        return self._call("like", _with_owner({"postId": post_id, "userId": user_id}, post_owner_id), idempotency_key)

    def _call(self, kind: str, fields: dict[str, Any], idempotency_key: str | None) -> NotifyResult:
        """Send until an answer other than 503 comes or the retries are spent, with one key throughout."""
        key = idempotency_key if idempotency_key is not None else uuid.uuid4().hex
        if not key or len(key) > MAX_IDEMPOTENCY_KEY:
            raise ValueError(f"idempotency_key must have 1 to {MAX_IDEMPOTENCY_KEY} characters")
        path = f"{self._path_prefix}/notify/{kind}"
        body = json.dumps(fields, separators=(",", ":")).encode("utf-8")
        for attempt in range(self.retries + 1):
            retry_after = 0.0
            try:
                status, answer, retry_after = self._send(path, body, key)
            except (OSError, http.client.HTTPException) as error:
                timed_out = isinstance(error, (socket.timeout, TimeoutError)) or isinstance(
                    getattr(error, "reason", None), (socket.timeout, TimeoutError)
                )
                failure: NotifyError = (NotifyTimeout if timed_out else Unavailable)(
                    f"no answer from {self.base_url}: {error}"
                )
                failure.__cause__ = error
            else:
                if status == 200 and isinstance(answer, dict):
                    return NotifyResult(int(answer["recipients"]), int(answer["online"]), key)
                failure = BY_STATUS.get(status, NotifyError)(_error_message(answer), status)
                if status != 503:
                    failure.idempotency_key = key
                    raise failure
            if attempt < self.retries:
                self._sleep(max(self._delay(attempt), min(retry_after, self.max_backoff)))
        failure.idempotency_key = key  # to retry later: the service answers it once
        raise failure

    def _send(self, path: str, body: bytes, key: str) -> tuple[int, Any, float]:
        """One attempt: (status, the answer's JSON or its text, the seconds its `Retry-After` asks for or 0)."""
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: key}
        if self._signing_secret is not None:
            timestamp = int(self._clock())  # per attempt: a retry must stay within the service's allowed skew
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(self._signing_secret, "POST", path, timestamp, body)
        elif self._secret:
            headers[SECRET_HEADER] = self._secret
        url = urllib.parse.urlunsplit(self._origin + (path, "", ""))
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, _decode(response.read()), 0.0
        except urllib.error.HTTPError as error:
            with error:
                return error.code, _decode(error.read()), _retry_after(error.headers.get("Retry-After"))

    def _delay(self, attempt: int) -> float:
        """Seconds before retry `attempt` + 1: exponential, capped, a random point in the upper half."""
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return ceiling / 2 + random.random() * ceiling / 2


def _with_owner(fields: dict[str, Any], post_owner_id: int | None) -> dict[str, Any]:
    return fields if post_owner_id is None else {**fields, "postOwnerId": post_owner_id}


def _retry_after(value: str | None) -> float:
    """The seconds of a `Retry-After` header in its delay form ("1"); 0 for none, or for the date form, which the
    service never sends."""
    return float(value) if value and value.strip().isdigit() else 0.0


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _error_message(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return answer["error"]
    return str(answer)[:200] or "no message"
