"""Notifications end to end: the HTTP notify API, pushed `notification` frames, the stored list,
`notification_read`, like grouping, and every refusal of the API, against the real service on
both database backends.

Each test makes its own users and posts (ids from `new_user_ids`), so tests sharing the
module's server never see each other's notifications. Servers with other settings (a notify
secret, a CORS origin list, a short like-grouping window) are started per test.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.helpers.client import Client
from tests.helpers.notifications import (
    ISO_UTC_MS,
    QUIET,
    assert_failure,
    assert_notification,
    assert_ok,
    ids,
    name_of,
    notify,
    post_chunked,
    post_form,
    post_json,
    post_of,
    request,
)
from tests.helpers.server import ServerFactory, ServerProcess, new_user_ids

MAX_BODY_BYTES = 65536  # the default [limits] max_body_bytes
LIKE_WINDOW = 1.0  # [notify] like_group_seconds of the grouping tests' servers
NOTIFY_SECRET = "notify-secret-for-notification-tests-4f1c"
ORIGINS = ("https://app.example", "https://admin.example")


# ---------------------------------------------------------------- platform data and frames


def stored(client: Client, **request: Any) -> list[dict[str, Any]]:
    client.send({"type": "notifications", **request})
    return client.expect("notifications")["notifications"]


def unread_on_new_socket(server: ServerProcess, user_id: int) -> int:
    with server.connect(user_id) as socket:
        return socket.connected["unreadNotifications"]


# ---------------------------------------------------------------- recipients: posts


def test_post_reaches_every_follower_on_every_socket_and_nobody_else(server: ServerProcess) -> None:
    author, fan, reader, offline, stranger, other_author = server.add_users(6)
    server.storage.add_follows(
        [(fan, author), (reader, author), (offline, author), (author, author), (stranger, other_author)]
    )
    post_id = post_of(server, author)
    with server.connect(fan) as fan_laptop, server.connect(fan) as fan_phone, server.connect(
        reader
    ) as reader_socket, server.connect(author) as author_socket, server.connect(stranger) as stranger_socket:
        reply = notify(server, "post", postId=post_id, userId=author)
        assert_ok(reply, recipients=3, online=2)  # the fan's two sockets count once

        text = f"{name_of(author)} published a new post"
        laptop = fan_laptop.expect("notification", postId=post_id)
        phone = fan_phone.expect("notification", postId=post_id)
        assert_notification(laptop, "post", author, post_id, text)
        assert phone == laptop
        other = reader_socket.expect("notification", postId=post_id)
        assert_notification(other, "post", author, post_id, text)
        assert other["notificationId"] != laptop["notificationId"]  # one stored per recipient

        author_socket.assert_no_frame("notification", within=QUIET)
        stranger_socket.assert_no_frame("notification", within=QUIET)
        fan_laptop.assert_no_frame("notification", within=QUIET)  # once per socket, not twice
        assert stored(fan_laptop)[0]["notificationId"] == laptop["notificationId"]

    assert unread_on_new_socket(server, offline) == 1
    assert unread_on_new_socket(server, author) == 0
    assert unread_on_new_socket(server, stranger) == 0


def test_post_by_an_author_without_followers_notifies_nobody(server: ServerProcess) -> None:
    (author,) = server.add_users(1)
    with server.connect(author) as socket:
        assert_ok(notify(server, "post", postId=post_of(server, author), userId=author), recipients=0, online=0)
        socket.assert_no_frame("notification", within=QUIET)


def test_offline_follower_finds_posts_in_the_count_and_the_list_newest_first(server: ServerProcess) -> None:
    author, follower = server.add_users(2)
    server.storage.add_follows([(follower, author)])
    post_ids = [post_of(server, author) for _ in range(3)]
    for post_id in post_ids:
        assert_ok(notify(server, "post", postId=post_id, userId=author), recipients=1, online=0)

    with server.connect(follower) as socket:
        assert socket.connected["unreadNotifications"] == 3
        socket.assert_no_frame("notification", within=QUIET)  # stored, not replayed as pushes
        entries = stored(socket)
        assert [e["postId"] for e in entries] == post_ids[::-1]
        notification_ids = [e["notificationId"] for e in entries]
        assert notification_ids == sorted(notification_ids, reverse=True)
        for entry in entries:
            assert entry == {
                "notificationId": entry["notificationId"],
                "notificationType": "post",
                "actorId": author,
                "postId": entry["postId"],
                "commentId": None,
                "createdAt": entry["createdAt"],
                "text": f"{name_of(author)} published a new post",
                "read": False,
            }
            assert ISO_UTC_MS.match(entry["createdAt"])
        assert entries[0]["createdAt"] >= entries[-1]["createdAt"]

        # paging: `limit`, then `before`
        assert stored(socket, limit=2) == entries[:2]
        assert stored(socket, before=entries[1]["notificationId"]) == entries[2:]


# ---------------------------------------------------------------- recipients: comments and likes


def test_comment_reaches_the_post_owner_on_every_socket(server: ServerProcess) -> None:
    owner, bystander = server.add_users(2)
    (commenter,) = new_user_ids(1)
    server.storage.add_users([(commenter, "zoë 🎉")])
    server.storage.add_follows([(bystander, owner), (bystander, commenter)])
    post_id = post_of(server, owner)
    (comment_id,) = ids(1)
    with server.connect(owner) as laptop, server.connect(owner) as phone, server.connect(
        commenter
    ) as commenter_socket, server.connect(bystander) as bystander_socket:
        assert_ok(notify(server, "comment", postId=post_id, userId=commenter, commentId=comment_id), 1, 1)
        frames = [socket.expect("notification", postId=post_id) for socket in (laptop, phone)]
        assert_notification(frames[0], "comment", commenter, post_id, "zoë 🎉 commented on your post", comment_id)
        assert frames[1] == frames[0]
        commenter_socket.assert_no_frame("notification", within=QUIET)
        bystander_socket.assert_no_frame("notification", within=QUIET)
        [entry] = stored(phone)
        assert entry["commentId"] == comment_id and entry["notificationId"] == frames[0]["notificationId"]
        assert entry["text"] == frames[0]["text"] and entry["read"] is False


def test_like_reaches_the_post_owner_on_every_socket(server: ServerProcess) -> None:
    owner, liker, bystander = server.add_users(3)
    server.storage.add_follows([(bystander, owner), (bystander, liker)])
    post_id = post_of(server, owner)
    with server.connect(owner) as laptop, server.connect(owner) as phone, server.connect(
        liker
    ) as liker_socket, server.connect(bystander) as bystander_socket:
        assert_ok(notify(server, "like", postId=post_id, userId=liker), recipients=1, online=1)
        text = f"{name_of(liker)} liked your post"
        frames = [socket.expect("notification", postId=post_id) for socket in (laptop, phone)]
        assert_notification(frames[0], "like", liker, post_id, text)
        assert frames[1] == frames[0]
        liker_socket.assert_no_frame("notification", within=QUIET)
        bystander_socket.assert_no_frame("notification", within=QUIET)


@pytest.mark.parametrize("kind", ["comment", "like"])
def test_comment_or_like_by_the_owner_notifies_nobody(server: ServerProcess, kind: str) -> None:
    (owner,) = server.add_users(1)
    post_id = post_of(server, owner)
    extra = {"commentId": ids(1)[0]} if kind == "comment" else {}
    with server.connect(owner) as socket:
        assert_ok(notify(server, kind, postId=post_id, userId=owner, **extra), recipients=0, online=0)
        # also when the caller names the owner itself, for a post the table does not have
        assert_ok(notify(server, kind, postId=ids(1)[0], userId=owner, postOwnerId=owner, **extra), 0, 0)
        socket.assert_no_frame("notification", within=QUIET)
    assert unread_on_new_socket(server, owner) == 0


@pytest.mark.parametrize("kind", ["comment", "like"])
def test_post_owner_id_names_the_recipient_instead_of_the_posts_table(server: ServerProcess, kind: str) -> None:
    table_owner, named_owner, actor = server.add_users(3)
    post_id = post_of(server, table_owner)
    extra = {"commentId": ids(1)[0]} if kind == "comment" else {}
    with server.connect(table_owner) as table_socket, server.connect(named_owner) as named_socket:
        assert_ok(notify(server, kind, postId=post_id, userId=actor, postOwnerId=named_owner, **extra), 1, 1)
        frame = named_socket.expect("notification", postId=post_id)
        assert frame["notificationType"] == kind and frame["actorId"] == actor
        table_socket.assert_no_frame("notification", within=QUIET)


@pytest.mark.parametrize("kind", ["comment", "like"])
def test_post_owner_id_makes_an_unknown_post_fine(server: ServerProcess, kind: str) -> None:
    owner, actor = server.add_users(2)
    extra = {"commentId": ids(1)[0]} if kind == "comment" else {}
    assert_ok(notify(server, kind, postId=ids(1)[0], userId=actor, postOwnerId=owner, **extra), 1, 0)
    assert unread_on_new_socket(server, owner) == 1


@pytest.mark.parametrize("kind", ["post", "comment", "like"])
def test_unknown_post_without_post_owner_id_is_404_and_stores_nothing(server: ServerProcess, kind: str) -> None:
    actor, follower = server.add_users(2)
    server.storage.add_follows([(follower, actor)])
    extra = {"commentId": 5} if kind == "comment" else {}
    (post_id,) = ids(1)
    assert_failure(notify(server, kind, postId=post_id, userId=actor, **extra), 404, mentions=f"post {post_id}")
    assert unread_on_new_socket(server, follower) == 0


def test_text_names_an_actor_the_platform_does_not_know_by_id(server: ServerProcess) -> None:
    (owner,) = server.add_users(1)
    (ghost,) = new_user_ids(1)  # no users row
    post_id = post_of(server, owner)
    with server.connect(owner) as socket:
        assert_ok(notify(server, "like", postId=post_id, userId=ghost), recipients=1, online=1)
        frame = socket.expect("notification", postId=post_id)
        assert_notification(frame, "like", ghost, post_id, f"User {ghost} liked your post")


# ---------------------------------------------------------------- body encodings


@pytest.mark.parametrize("encoding", ["json-strings", "form"])
@pytest.mark.parametrize("kind", ["post", "comment", "like"])
def test_form_bodies_and_ids_as_strings_are_accepted(server: ServerProcess, kind: str, encoding: str) -> None:
    owner, actor = server.add_users(2)
    server.storage.add_follows([(owner, actor)])  # for `post` the owner is the author's follower
    post_id = post_of(server, owner)
    (comment_id,) = ids(1)
    fields: dict[str, Any] = {"postId": f" {post_id} ", "userId": str(actor)}
    if kind == "comment":
        fields["commentId"] = str(comment_id)
    if kind != "post":
        fields["postOwnerId"] = ""  # an empty optional form field counts as absent
    path = f"/notify/{kind}"
    with server.connect(owner) as socket:
        reply = post_form(server, path, fields) if encoding == "form" else post_json(server, path, fields)
        assert_ok(reply, recipients=1, online=1)
        frame = socket.expect("notification", postId=post_id)  # ids are integers on the wire
        assert frame["actorId"] == actor and frame["notificationType"] == kind
        if kind == "comment":
            assert frame["commentId"] == comment_id


def test_multipart_form_body_is_accepted(server: ServerProcess) -> None:
    owner, actor = server.add_users(2)
    post_id = post_of(server, owner)
    boundary = "----notify-test-boundary"
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in (("postId", post_id), ("userId", actor))
    )
    body = f"{parts}--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert_ok(request(server, "POST", "/notify/like", body, headers), recipients=1, online=0)


def test_json_with_charset_is_accepted_and_a_body_of_another_type_is_415(server: ServerProcess) -> None:
    """text/plain is what a web page may post to another origin without a preflight."""
    owner, actor = server.add_users(2)
    post_id = post_of(server, owner)
    body = json.dumps({"postId": post_id, "userId": actor}).encode()
    reply = request(server, "POST", "/notify/like", body, {"Content-Type": "application/json; charset=utf-8"})
    assert_ok(reply, 1, 0)
    for content_type in ("text/plain", "text/plain;charset=UTF-8", "application/octet-stream"):
        reply = request(server, "POST", "/notify/like", body, {"Content-Type": content_type})
        assert_failure(reply, 415, mentions="application/json")
    assert unread_on_new_socket(server, owner) == 1


# ---------------------------------------------------------------- refusals


BAD_JSON_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("post", {}, "postId"),
    ("post", {"userId": 1}, "postId"),
    ("post", {"postId": None, "userId": 1}, "postId"),
    ("post", {"postId": "", "userId": 1}, "postId"),
    ("post", {"postId": "abc", "userId": 1}, "postId"),
    ("post", {"postId": 0, "userId": 1}, "postId"),
    ("post", {"postId": -5, "userId": 1}, "postId"),
    ("post", {"postId": 1.5, "userId": 1}, "postId"),
    ("post", {"postId": 2.0, "userId": 1}, "postId"),
    ("post", {"postId": True, "userId": 1}, "postId"),
    ("post", {"postId": [1], "userId": 1}, "postId"),
    ("post", {"postId": {"id": 1}, "userId": 1}, "postId"),
    ("post", {"postId": 1}, "userId"),
    ("post", {"postId": 1, "userId": False}, "userId"),
    ("post", {"postId": 1, "userId": 2**63}, "userId"),
    ("post", {"postId": 1, "userId": "99999999999999999999"}, "userId"),
    ("post", {"postId": 1, "userId": "1" * 5000}, "userId"),
    ("post", {"postId": 1, "userId": "0x1f"}, "userId"),
    ("comment", {"postId": 1, "userId": 2}, "commentId"),
    ("comment", {"postId": 1, "userId": 2, "commentId": "x"}, "commentId"),
    ("comment", {"postId": 1, "userId": 2, "commentId": 0}, "commentId"),
    ("comment", {"postId": 1, "userId": 2, "commentId": 3, "postOwnerId": "x"}, "postOwnerId"),
    ("comment", {"userId": 2, "commentId": 3}, "postId"),
    ("like", {"postId": 1}, "userId"),
    ("like", {"postId": 1, "userId": 2, "postOwnerId": True}, "postOwnerId"),
    ("like", {"postId": 1, "userId": 2, "postOwnerId": -1}, "postOwnerId"),
    ("like", {"postId": "1.0", "userId": 2}, "postId"),
]


@pytest.mark.parametrize(
    ("kind", "body", "field"), BAD_JSON_FIELDS, ids=[f"{k}-{f}-{i}" for i, (k, _, f) in enumerate(BAD_JSON_FIELDS)]
)
def test_missing_or_ill_typed_json_field_is_400_naming_it(
    server: ServerProcess, kind: str, body: dict[str, Any], field: str
) -> None:
    assert_failure(post_json(server, f"/notify/{kind}", body), 400, mentions=field)


BAD_FORM_FIELDS: list[tuple[str, bytes, str]] = [
    ("post", b"", "postId"),
    ("post", b"userId=1", "postId"),
    ("post", b"postId=&userId=1", "postId"),
    ("post", b"postId=abc&userId=1", "postId"),
    ("post", b"postId=1&userId=-3", "userId"),
    ("post", b"postId=1&userId=%EF%BC%91", "userId"),  # fullwidth digit one
    ("comment", b"postId=1&userId=2", "commentId"),
    ("comment", b"postId=1&userId=2&commentId=1e3", "commentId"),
    ("like", b"postId=1&userId=2&postOwnerId=nobody", "postOwnerId"),
]


@pytest.mark.parametrize(
    ("kind", "body", "field"), BAD_FORM_FIELDS, ids=[f"{k}-{f}-{i}" for i, (k, _, f) in enumerate(BAD_FORM_FIELDS)]
)
def test_missing_or_ill_typed_form_field_is_400_naming_it(
    server: ServerProcess, kind: str, body: bytes, field: str
) -> None:
    assert_failure(post_form(server, f"/notify/{kind}", body), 400, mentions=field)


@pytest.mark.parametrize(
    "body",
    [b"[1, 2]", b'"postId"', b"null", b"42", b"{not json", b'{"postId": 1,', b"\xff\xfe\x00", b'{"postId": NaN}'],
    ids=["array", "string", "null", "number", "garbage", "truncated", "not-utf8", "nan"],
)
def test_body_that_is_not_a_json_object_is_400(server: ServerProcess, body: bytes) -> None:
    assert_failure(post_json(server, "/notify/like", body), 400)


def test_deeply_nested_json_body_is_400_not_500(server: ServerProcess) -> None:
    assert_failure(post_json(server, "/notify/post", b"[" * 50_000), 400)


@pytest.mark.parametrize("kind", ["post", "comment", "like"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405(server: ServerProcess, kind: str, method: str) -> None:
    data = None if method in ("GET", "DELETE") else b'{"postId": 1, "userId": 2}'
    reply = request(server, method, f"/notify/{kind}", data, {"Content-Type": "application/json"})
    assert_failure(reply, 405)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/notify/share"), ("POST", "/notify"), ("POST", "/notify/"), ("POST", "/notify/post/1"),
     ("POST", "/NOTIFY/POST"), ("GET", "/nope"), ("POST", "/")],
)
def test_unknown_path_is_404(server: ServerProcess, method: str, path: str) -> None:
    data = b'{"postId": 1, "userId": 2}' if method == "POST" else None
    assert_failure(request(server, method, path, data, {"Content-Type": "application/json"}), 404)


def _padded_json(fields: dict[str, Any], total_bytes: int) -> bytes:
    """A JSON object with `fields` and a filler field, exactly `total_bytes` long."""
    empty = json.dumps({**fields, "pad": ""}).encode()
    body = json.dumps({**fields, "pad": "x" * (total_bytes - len(empty))}).encode()
    assert len(body) == total_bytes
    return body


def test_body_at_the_limit_is_accepted_and_one_byte_more_is_413(server: ServerProcess) -> None:
    owner, liker = server.add_users(2)
    post_id = post_of(server, owner)
    fields = {"postId": post_id, "userId": liker}
    with server.connect(owner) as socket:
        assert_ok(post_json(server, "/notify/like", _padded_json(fields, MAX_BODY_BYTES)), 1, 1)
        socket.expect("notification", postId=post_id)
        assert_failure(post_json(server, "/notify/like", _padded_json(fields, MAX_BODY_BYTES + 1)), 413)
        form = urllib.parse.urlencode({**fields, "pad": "x" * MAX_BODY_BYTES}).encode()
        assert_failure(post_form(server, "/notify/like", form), 413)
        assert_failure(post_json(server, "/notify/like", b" " * (4 * MAX_BODY_BYTES)), 413)
        socket.assert_no_frame("notification", within=QUIET)  # nothing refused was stored or pushed
        assert len(stored(socket)) == 1


def test_chunked_body_over_the_limit_is_413(server: ServerProcess) -> None:
    owner, liker = server.add_users(2)
    post_id = post_of(server, owner)
    # valid JSON followed by whitespace: its first max_body_bytes bytes are valid JSON too
    body = json.dumps({"postId": post_id, "userId": liker}).encode() + b" " * (2 * MAX_BODY_BYTES)
    reply = post_chunked(server, "/notify/like", body, "application/json")
    assert_failure(reply, 413)


def test_small_chunked_body_is_accepted(server: ServerProcess) -> None:
    owner, liker = server.add_users(2)
    post_id = post_of(server, owner)
    body = json.dumps({"postId": post_id, "userId": liker}).encode()
    reply = post_chunked(server, "/notify/like", body, "application/json")
    assert reply.status == 200 and reply.json == {"success": True, "recipients": 1, "online": 0}


@pytest.mark.parametrize("path", ["/notify/post", "/notify/comment", "/notify/like", "/healthz", "/notify/share"])
def test_preflight_is_204_with_cors_headers(server: ServerProcess, path: str) -> None:
    reply = request(
        server,
        "OPTIONS",
        path,
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-notify-secret",
        },
    )
    assert reply.status == 204 and reply.raw == b""
    assert "Access-Control-Allow-Origin" not in reply.headers  # no page origin is listed by default
    assert "origin" in reply.headers["Vary"].lower()
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    allowed = reply.headers["Access-Control-Allow-Headers"].lower()
    assert "content-type" in allowed and "x-notify-secret" in allowed


def test_health_is_ok_with_the_database_and_cors(server: ServerProcess) -> None:
    reply = request(server, "GET", "/healthz")
    assert reply.status == 200
    assert reply.json["status"] == "ok" and reply.json["database"] == "ok"
    assert "origin" in reply.headers["Vary"].lower()


def test_service_still_notifies_after_bad_requests(server: ServerProcess) -> None:
    author, follower = server.add_users(2)
    server.storage.add_follows([(follower, author)])
    request(server, "POST", "/notify/post", b'{"postId": 1, "userId": 2}', {"Content-Type": "text/plain"})
    post_json(server, "/notify/post", b"[" * 50_000)
    post_json(server, "/notify/post", b"{not json")
    post_json(server, "/notify/comment", {"postId": 1, "userId": author})
    post_json(server, "/notify/like", b"x" * (MAX_BODY_BYTES + 10))
    post_chunked(server, "/notify/like", b"x" * (2 * MAX_BODY_BYTES), "application/json")
    request(server, "GET", "/notify/post")
    with server.connect(follower) as socket:
        post_id = post_of(server, author)
        assert_ok(notify(server, "post", postId=post_id, userId=author), recipients=1, online=1)
        assert_notification(
            socket.expect("notification", postId=post_id),
            "post", author, post_id, f"{name_of(author)} published a new post",
        )
        socket.assert_alive()
    assert request(server, "GET", "/healthz").status == 200


# ---------------------------------------------------------------- notification_read


def test_read_one_then_all_is_echoed_to_every_socket_and_counted_on_connect(server: ServerProcess) -> None:
    owner, commenter = server.add_users(2)
    post_id = post_of(server, owner)
    with server.connect(owner) as laptop, server.connect(owner) as phone:
        assert laptop.connected["unreadNotifications"] == 0
        for comment_id in ids(3):
            assert_ok(notify(server, "comment", postId=post_id, userId=commenter, commentId=comment_id), 1, 1)
        pushed = [laptop.expect("notification", postId=post_id) for _ in range(3)]
        for frame in pushed:
            phone.expect("notification", notificationId=frame["notificationId"])
        first, second, third = (frame["notificationId"] for frame in pushed)
        assert first < second < third
        assert unread_on_new_socket(server, owner) == 3

        laptop.send({"type": "notification_read", "notificationId": second})
        for socket in (laptop, phone):
            echo = socket.expect("notification_read")
            assert echo["notificationId"] == second and "all" not in echo
            assert ISO_UTC_MS.match(echo["readAt"])
        assert unread_on_new_socket(server, owner) == 2
        assert [(e["notificationId"], e["read"]) for e in stored(phone)] == [
            (third, False), (second, True), (first, False)
        ]

        # marking it again is harmless
        phone.send({"type": "notification_read", "notificationId": second})
        laptop.expect("notification_read", notificationId=second)
        phone.expect("notification_read", notificationId=second)
        assert unread_on_new_socket(server, owner) == 2

        with server.connect(owner) as tablet:
            assert tablet.connected["unreadNotifications"] == 2
            phone.send({"type": "notification_read", "all": True})
            for socket in (laptop, phone, tablet):
                echo = socket.expect("notification_read")
                assert echo["all"] is True and "notificationId" not in echo
                assert ISO_UTC_MS.match(echo["readAt"])
        assert unread_on_new_socket(server, owner) == 0
        assert [e["read"] for e in stored(laptop)] == [True, True, True]
        laptop.assert_no_frame("error", within=QUIET)


def test_reading_someone_elses_notification_is_not_found_and_changes_nothing(server: ServerProcess) -> None:
    owner, intruder, liker = server.add_users(3)
    post_id = post_of(server, owner)
    intruder_post = post_of(server, intruder)
    assert_ok(notify(server, "like", postId=post_id, userId=liker), 1, 0)
    assert_ok(notify(server, "like", postId=intruder_post, userId=liker), 1, 0)
    with server.connect(owner) as owner_socket:
        [theirs] = stored(owner_socket)
    with server.connect(intruder) as a, server.connect(intruder) as b:
        assert a.connected["unreadNotifications"] == 1
        a.send({"type": "notification_read", "notificationId": theirs["notificationId"]})
        error = a.expect_error("not_found")
        assert error["ref"] == {"type": "notification_read"}
        b.assert_no_frame("notification_read", within=QUIET)
        a.assert_no_frame("notification_read", within=0)

        a.send({"type": "notification_read", "notificationId": 2**62})  # nobody's
        a.expect_error("not_found")
        a.assert_alive()

        # `all` marks only the intruder's own
        b.send({"type": "notification_read", "all": True})
        a.expect("notification_read", all=True)
        b.expect("notification_read", all=True)
    assert unread_on_new_socket(server, intruder) == 0
    assert unread_on_new_socket(server, owner) == 1
    with server.connect(owner) as owner_socket:
        assert stored(owner_socket)[0]["read"] is False


# ---------------------------------------------------------------- secret and CORS settings


@pytest.mark.slow  # starts a server of its own
def test_notify_secret_is_required_when_configured(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_NOTIFY_SECRET": NOTIFY_SECRET}).start()
    author, follower = server.add_users(2)
    server.storage.add_follows([(follower, author)])
    post_id = post_of(server, author)
    with server.connect(follower) as socket:
        assert_failure(notify(server, "post", postId=post_id, userId=author), 401)
        for wrong in ("", "wrong", NOTIFY_SECRET + "x", NOTIFY_SECRET.upper(), NOTIFY_SECRET[:-1]):
            reply = notify(server, "post", {"X-Notify-Secret": wrong}, postId=post_id, userId=author)
            assert_failure(reply, 401)
        # the check comes first: a bad body or method without the secret is still 401
        assert_failure(post_json(server, "/notify/comment", {}), 401)
        assert_failure(request(server, "GET", "/notify/like"), 401)
        socket.assert_no_frame("notification", within=QUIET)

        # the preflight needs no secret, nor does health
        reply = request(server, "OPTIONS", "/notify/post", headers={"Access-Control-Request-Method": "POST"})
        assert reply.status == 204 and "Access-Control-Allow-Origin" not in reply.headers
        assert "X-Notify-Secret" in reply.headers["Access-Control-Allow-Headers"]
        assert request(server, "GET", "/healthz").status == 200

        good = {"X-Notify-Secret": NOTIFY_SECRET}
        assert_ok(notify(server, "post", good, postId=post_id, userId=author), recipients=1, online=1)
        assert_notification(
            socket.expect("notification", postId=post_id),
            "post", author, post_id, f"{name_of(author)} published a new post",
        )
        socket.assert_no_frame("notification", within=QUIET)  # the refused ones stored nothing
        form = post_form(server, "/notify/post", {"postId": post_of(server, author), "userId": author}, good)
        assert_ok(form, 1, 1)
        assert_failure(post_json(server, "/notify/comment", {}, good), 400, mentions="postId")
    assert unread_on_new_socket(server, follower) == 2


@pytest.mark.slow  # starts a server of its own
def test_configured_cors_origins_are_echoed_with_vary(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_NOTIFY_CORS_ORIGINS": " ".join(ORIGINS)}).start()
    owner, liker = server.add_users(2)
    post_id = post_of(server, owner)
    for origin in ORIGINS:
        reply = notify(server, "like", {"Origin": origin}, postId=post_id, userId=liker)
        assert reply.status == 200 and reply.json["success"] is True
        assert reply.headers["Access-Control-Allow-Origin"] == origin
        assert "origin" in reply.headers.get("Vary", "").lower()

        assert_failure(notify(server, "like", {"Origin": origin}, userId=liker), 400, origin=origin)
        assert_failure(notify(server, "like", {"Origin": origin}, postId=ids(1)[0], userId=liker), 404, origin=origin)
        assert_failure(request(server, "GET", "/notify/like", headers={"Origin": origin}), 405, origin=origin)
        assert_failure(request(server, "GET", "/nope", headers={"Origin": origin}), 404, origin=origin)

        preflight = request(server, "OPTIONS", "/notify/like", headers={"Origin": origin})
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == origin
        assert "origin" in preflight.headers.get("Vary", "").lower()

    # without [notify] secret a page of an origin not on the list is refused; a caller without Origin is served
    for origin in ("https://evil.example", "null"):
        assert_failure(notify(server, "like", {"Origin": origin}, postId=post_id, userId=liker), 403, "Origin")
    assert_ok(notify(server, "like", postId=post_id, userId=liker), 1, 0)
    assert_failure(notify(server, "like", userId=liker), 400)
    preflight = request(server, "OPTIONS", "/notify/like", headers={"Origin": "https://evil.example"})
    assert preflight.status == 204 and "Access-Control-Allow-Origin" not in preflight.headers


# ---------------------------------------------------------------- like grouping


@pytest.fixture
def grouping_server(make_server: ServerFactory) -> ServerProcess:
    return make_server({"REALTIME_NOTIFY_LIKE_GROUP_SECONDS": str(LIKE_WINDOW)}).start()


@pytest.mark.slow  # starts a server of its own
def test_likes_within_the_window_go_out_as_one_grouped_frame(grouping_server: ServerProcess) -> None:
    server = grouping_server
    owner, first, second, third, fourth, late = server.add_users(6)
    post_id = post_of(server, owner)
    with server.connect(owner) as laptop, server.connect(owner) as phone:
        assert_ok(notify(server, "like", postId=post_id, userId=first), 1, 1)
        opened = time.monotonic()
        for socket in (laptop, phone):  # the first like at once, ungrouped
            assert_notification(
                socket.expect("notification", timeout=LIKE_WINDOW * 0.8, postId=post_id),
                "like", first, post_id, f"{name_of(first)} liked your post",
            )

        for liker in (second, third, fourth):
            assert_ok(notify(server, "like", postId=post_id, userId=liker), 1, 1)
        grouped = laptop.expect("notification", timeout=LIKE_WINDOW + 5, postId=post_id)
        held_for = time.monotonic() - opened
        assert phone.expect("notification", postId=post_id) == grouped
        assert held_for >= LIKE_WINDOW * 0.8, f"the grouped frame came after {held_for:.2f} s, before the window ended"
        assert grouped["count"] == 3
        assert grouped["actorIds"] == [fourth, third, second]  # newest first
        assert grouped["actorId"] == fourth and grouped["notificationType"] == "like"
        assert grouped["text"] == f"{name_of(fourth)} and 2 others liked your post"
        assert "commentId" not in grouped and ISO_UTC_MS.match(grouped["createdAt"])

        # exactly one frame for the three: the window reopens and closes empty
        laptop.assert_no_frame("notification", within=LIKE_WINDOW + 0.2)
        phone.assert_no_frame("notification", within=0)

        # every like was stored, newest first; the grouped frame carries the newest one's id, and the ids of
        # the three it stands for (not the first like's, which its own frame carried)
        entries = [e for e in stored(laptop) if e["postId"] == post_id]
        assert [e["actorId"] for e in entries] == [fourth, third, second, first]
        assert [e["read"] for e in entries] == [False] * 4
        assert entries[0]["notificationId"] == grouped["notificationId"]
        assert grouped["notificationIds"] == [e["notificationId"] for e in entries[:3]]
        assert entries[0]["text"] == f"{name_of(fourth)} liked your post"  # stored one by one

        # once the window has closed, the next like is pushed at once again (a window that stayed
        # open would hold it until its next tick, about LIKE_WINDOW * 0.8 from now)
        assert_ok(notify(server, "like", postId=post_id, userId=late), 1, 1)
        assert_notification(
            laptop.expect("notification", timeout=LIKE_WINDOW * 0.5, postId=post_id),
            "like", late, post_id, f"{name_of(late)} liked your post",
        )
    assert unread_on_new_socket(server, owner) == 5


@pytest.mark.slow  # starts a server of its own
def test_a_repeated_like_is_neither_stored_nor_grouped_again_and_one_other_is_singular(
    grouping_server: ServerProcess,
) -> None:
    server = grouping_server
    owner, first, second, third = server.add_users(4)
    post_id = post_of(server, owner)
    with server.connect(owner) as socket:
        assert_ok(notify(server, "like", postId=post_id, userId=first), 1, 1)
        socket.expect("notification", timeout=LIKE_WINDOW * 0.8, postId=post_id, actorId=first)
        for liker in (second, third):
            assert_ok(notify(server, "like", postId=post_id, userId=liker), 1, 1)
        assert_ok(notify(server, "like", postId=post_id, userId=second), 1, 0)  # a repeat: nothing stored or pushed
        grouped = socket.expect("notification", timeout=LIKE_WINDOW + 5, postId=post_id)
        assert grouped["actorIds"] == [third, second] and grouped["count"] == 2
        assert grouped["actorId"] == third
        assert grouped["text"] == f"{name_of(third)} and 1 other liked your post"
        socket.assert_no_frame("notification", within=QUIET)
        entries = [e for e in stored(socket) if e["postId"] == post_id]
        assert [e["actorId"] for e in entries] == [third, second, first]
        assert grouped["notificationIds"] == [e["notificationId"] for e in entries[:2]]


@pytest.mark.slow  # starts a server of its own
def test_likes_on_two_posts_are_not_grouped_together(grouping_server: ServerProcess) -> None:
    server = grouping_server
    owner, a1, b1, a2, b2 = server.add_users(5)
    post_a, post_b = post_of(server, owner), post_of(server, owner)
    with server.connect(owner) as socket:
        assert_ok(notify(server, "like", postId=post_a, userId=a1), 1, 1)
        assert_ok(notify(server, "like", postId=post_b, userId=b1), 1, 1)
        # the first like of each post goes out at once: post B's is not held by post A's window
        socket.expect("notification", timeout=LIKE_WINDOW * 0.8, postId=post_a, actorId=a1)
        socket.expect("notification", timeout=LIKE_WINDOW * 0.8, postId=post_b, actorId=b1)

        assert_ok(notify(server, "like", postId=post_a, userId=a2), 1, 1)
        assert_ok(notify(server, "like", postId=post_b, userId=b2), 1, 1)
        held_a = socket.expect("notification", timeout=LIKE_WINDOW + 5, postId=post_a)
        held_b = socket.expect("notification", timeout=LIKE_WINDOW + 5, postId=post_b)
        # one held like per post: each goes out alone, ungrouped
        assert_notification(held_a, "like", a2, post_a, f"{name_of(a2)} liked your post")
        assert_notification(held_b, "like", b2, post_b, f"{name_of(b2)} liked your post")
        socket.assert_no_frame("notification", within=QUIET)


@pytest.mark.slow  # starts a server of its own
def test_comments_are_never_grouped_nor_held(grouping_server: ServerProcess) -> None:
    server = grouping_server
    owner, liker, commenter, other_commenter, second_liker = server.add_users(5)
    post_id = post_of(server, owner)
    first_comment, second_comment = ids(2)
    with server.connect(owner) as socket:
        assert_ok(notify(server, "like", postId=post_id, userId=liker), 1, 1)
        socket.expect("notification", timeout=LIKE_WINDOW * 0.8, postId=post_id, actorId=liker)
        # a like window is open on this post now
        assert_ok(notify(server, "comment", postId=post_id, userId=commenter, commentId=first_comment), 1, 1)
        assert_ok(notify(server, "like", postId=post_id, userId=second_liker), 1, 1)
        assert_ok(notify(server, "comment", postId=post_id, userId=other_commenter, commentId=second_comment), 1, 1)

        arrived = [socket.expect("notification", timeout=LIKE_WINDOW + 5, postId=post_id) for _ in range(3)]
        # both comments came before the held like, which waited for the window's end
        assert [f["notificationType"] for f in arrived] == ["comment", "comment", "like"]
        assert_notification(
            arrived[0], "comment", commenter, post_id, f"{name_of(commenter)} commented on your post", first_comment
        )
        assert_notification(
            arrived[1], "comment", other_commenter, post_id,
            f"{name_of(other_commenter)} commented on your post", second_comment,
        )
        assert_notification(arrived[2], "like", second_liker, post_id, f"{name_of(second_liker)} liked your post")
        socket.assert_no_frame("notification", within=QUIET)


@pytest.mark.slow  # starts a server of its own
def test_likes_for_an_offline_owner_are_all_stored(grouping_server: ServerProcess) -> None:
    server = grouping_server
    owner, *likers = server.add_users(4)
    post_id = post_of(server, owner)
    for liker in likers:
        assert_ok(notify(server, "like", postId=post_id, userId=liker), recipients=1, online=0)
    with server.connect(owner) as socket:
        assert socket.connected["unreadNotifications"] == 3
        assert [e["actorId"] for e in stored(socket)] == likers[::-1]
        socket.assert_no_frame("notification", within=QUIET)
