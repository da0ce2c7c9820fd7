"""The notify API called as the main web application calls it, and checks of what it answers and pushes.

`notify(server, kind, **fields)` posts JSON to `/notify/<kind>`; `assert_ok` and `assert_failure`
check the answer, `assert_notification` a pushed `notification` frame.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

from tests.helpers.server import ServerProcess, new_user_ids

ISO_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
QUIET = 0.3  # seconds to wait for a frame that must not come, once the frames that must came


# ---------------------------------------------------------------- HTTP helpers


@dataclass
class Reply:
    status: int
    headers: Message
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


def request(
    server: ServerProcess,
    method: str,
    path: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    prepared = urllib.request.Request(server.http_url + path, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(prepared, timeout=15) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


def post_json(server: ServerProcess, path: str, body: Any, headers: dict[str, str] | None = None) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request(server, "POST", path, raw, {"Content-Type": "application/json", **(headers or {})})


def post_form(
    server: ServerProcess, path: str, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
) -> Reply:
    raw = body if isinstance(body, bytes) else urllib.parse.urlencode(body).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    return request(server, "POST", path, raw, {**form, **(headers or {})})


def post_chunked(server: ServerProcess, path: str, body: bytes, content_type: str) -> Reply:
    """POST with `Transfer-Encoding: chunked` (no Content-Length)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=15)
    try:
        chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))
        connection.request("POST", path, body=chunks, headers={"Content-Type": content_type}, encode_chunked=True)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def notify(server: ServerProcess, kind: str, headers: dict[str, str] | None = None, **fields: Any) -> Reply:
    return post_json(server, f"/notify/{kind}", fields, headers)


def assert_ok(reply: Reply, recipients: int, online: int) -> None:
    assert reply.status == 200, (reply.status, reply.raw)
    assert reply.headers.get_content_type() == "application/json"
    assert reply.json == {"success": True, "recipients": recipients, "online": online}
    assert "Access-Control-Allow-Origin" not in reply.headers  # by default no web page may read the answer


def assert_failure(reply: Reply, status: int, mentions: str | None = None, origin: str | None = None) -> str:
    """A refusal: the status, a JSON body `{"success": false, "error": ...}` and the CORS headers
    (`origin`: the Access-Control-Allow-Origin expected; none by default)."""
    assert reply.status == status, (reply.status, reply.raw)
    assert reply.headers.get_content_type() == "application/json"
    body = reply.json
    assert body["success"] is False and isinstance(body["error"], str) and body["error"], body
    if mentions is not None:
        assert mentions in body["error"], body
    assert reply.headers.get("Access-Control-Allow-Origin") == origin
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert "X-Notify-Secret" in reply.headers["Access-Control-Allow-Headers"]
    return body["error"]


# ---------------------------------------------------------------- platform data and frames


def ids(count: int) -> list[int]:
    """Fresh post or comment ids (unique in this test session)."""
    return new_user_ids(count)


def name_of(user_id: int) -> str:
    return f"user{user_id}"  # what ServerProcess.add_users names them


def post_of(server: ServerProcess, owner: int) -> int:
    (post_id,) = ids(1)
    server.storage.add_posts([(post_id, owner)])
    return post_id


def assert_notification(
    frame: dict[str, Any],
    kind: str,
    actor: int,
    post: int,
    text: str,
    comment: int | None = None,
) -> None:
    """The exact fields of an ungrouped pushed `notification` frame."""
    assert frame["type"] == "notification"
    assert isinstance(frame["notificationId"], int) and frame["notificationId"] > 0
    assert frame["notificationType"] == kind
    assert frame["actorId"] == actor
    assert frame["postId"] == post
    assert frame["text"] == text
    assert ISO_UTC_MS.match(frame["createdAt"]), frame
    if kind == "comment":
        assert frame["commentId"] == comment
    else:
        assert "commentId" not in frame
    assert "count" not in frame and "actorIds" not in frame
