"""The Python notify client (clients/python) and its Flask example against the real service, on both databases.

The client is imported from the working tree (pytest.ini `pythonpath`); one test builds the package from its
sdist and runs it from a venv holding nothing else. What the service cannot be made to answer on demand (503
then 200, 409 while the server side of `Idempotency-Key` is elsewhere, silence) comes from local stand-ins.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from realtime_notify import (
    BadRequest,
    Conflict,
    NotFound,
    NotifyClient,
    NotifyError,
    NotifyResult,
    NotifyTimeout,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)

from protocol.tokens import verify_token
from tests.helpers.notifications import QUIET, assert_notification, ids, name_of, post_of
from tests.helpers.python_client import (
    build_into_fresh_venv,
    load_flask_example,
    run_in_venv,
    scripted_server,
    silent_listener,
)
from tests.helpers.server import SECRET, ServerFactory, ServerProcess

NOTIFY_SECRET = "notify-secret-for-python-client-tests-9b2e"
FAST = {"backoff": 0.01, "max_backoff": 0.05}  # retries in tests: the schedule's shape is a unit test's business
OK = {"success": True, "recipients": 1, "online": 0}


# ---------------------------------------------------------------- the three calls reach users


def test_post_comment_and_like_reach_connected_users(server: ServerProcess) -> None:
    author, follower, commenter = server.add_users(3)
    server.storage.add_follows([(follower, author)])
    client = NotifyClient(server.http_url)
    with server.connect(follower) as follower_socket, server.connect(author) as author_socket:
        post_id = post_of(server, author)
        published = client.post(post_id, author)
        assert (published.recipients, published.online) == (1, 1)
        frame = follower_socket.expect("notification", postId=post_id)
        assert_notification(frame, "post", author, post_id, f"{name_of(author)} published a new post")

        (comment_id,) = ids(1)
        assert client.comment(post_id, commenter, comment_id, post_owner_id=author).recipients == 1
        frame = author_socket.expect("notification", notificationType="comment")
        assert_notification(
            frame, "comment", commenter, post_id, f"{name_of(commenter)} commented on your post", comment_id
        )

        liked = client.like(post_id, follower)
        assert liked == NotifyResult(1, 1, liked.idempotency_key) and len(liked.idempotency_key) == 32
        frame = author_socket.expect("notification", notificationType="like")
        assert_notification(frame, "like", follower, post_id, f"{name_of(follower)} liked your post")

        assert client.like(post_id, author).recipients == 0  # liking one's own post tells nobody
        author_socket.assert_no_frame("notification", within=QUIET)


def test_refusals_are_typed(server: ServerProcess) -> None:
    (author,) = server.add_users(1)
    client = NotifyClient(server.http_url)
    (unknown_post,) = ids(1)
    with pytest.raises(NotFound) as not_found:
        client.like(unknown_post, author)
    assert not_found.value.status == 404 and not_found.value.idempotency_key
    with pytest.raises(BadRequest) as bad:
        client.comment(post_of(server, author), author, "not-a-comment-id")  # type: ignore[arg-type]
    assert bad.value.status == 400 and "commentId" in bad.value.message
    with pytest.raises(PayloadTooLarge) as too_large:
        client.post("9" * 70_000, author)  # type: ignore[arg-type]
    assert too_large.value.status == 413
    assert client.post(post_of(server, author), author).recipients == 0  # the service kept working


def test_one_idempotency_key_stores_once_and_another_body_with_it_is_a_conflict(server: ServerProcess) -> None:
    owner, liker, other = server.add_users(3)
    post_id = post_of(server, owner)
    client = NotifyClient(server.http_url)
    with server.connect(owner) as owner_socket:
        first = client.like(post_id, liker, idempotency_key="like-once")
        owner_socket.expect("notification", postId=post_id, actorId=liker)
        again = client.like(post_id, liker, idempotency_key="like-once")  # the first answer, nothing stored
        assert (again.recipients, again.online) == (first.recipients, first.online) == (1, 1)
        with pytest.raises(Conflict) as conflict:
            client.like(post_id, other, idempotency_key="like-once")
        assert conflict.value.status == 409 and conflict.value.idempotency_key == "like-once"
        owner_socket.assert_no_frame("notification", within=QUIET)
    assert len(server.storage.notifications(owner, None, 10)) == 1


# ---------------------------------------------------------------- authentication


@pytest.mark.slow  # starts a server of its own
def test_signed_and_shared_secret_calls_and_their_refusals(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_NOTIFY_SECRET": NOTIFY_SECRET}).start()
    owner, liker = server.add_users(2)
    post_id = post_of(server, owner)
    with server.connect(owner) as socket:
        for client in (
            NotifyClient(server.http_url, signing_secret=NOTIFY_SECRET),
            NotifyClient(server.http_url, secret=NOTIFY_SECRET),
        ):
            (comment_id,) = ids(1)
            assert client.comment(post_id, liker, comment_id).online == 1
            socket.expect("notification", commentId=comment_id)

        for client in (
            NotifyClient(server.http_url),
            NotifyClient(server.http_url, secret=NOTIFY_SECRET + "x"),
            NotifyClient(server.http_url, signing_secret=NOTIFY_SECRET + "x"),
            # a clock an hour off: the signature is right, its timestamp is outside the allowed skew
            NotifyClient(server.http_url, signing_secret=NOTIFY_SECRET, clock=lambda: time.time() - 3600),
        ):
            with pytest.raises(Unauthorized) as refused:
                client.like(post_id, liker)
            assert refused.value.status == 401
        socket.assert_no_frame("notification", within=QUIET)


# ---------------------------------------------------------------- retries, timeouts


def test_retries_on_503_repeat_one_idempotency_key_and_sign_each_attempt_afresh() -> None:
    answers = [(503, {"success": False, "error": "storage is unavailable"})] * 2 + [(200, OK)]
    with scripted_server(answers) as stand_in:
        client = NotifyClient(stand_in.url, signing_secret=NOTIFY_SECRET, **FAST)
        result = client.comment(7, 8, 9, post_owner_id=10)
    assert (result.recipients, result.online) == (1, 0)
    assert len(stand_in.requests) == 3
    keys = {headers["Idempotency-Key"] for _, headers, _ in stand_in.requests}
    assert keys == {result.idempotency_key}
    for path, headers, body in stand_in.requests:
        assert path == "/notify/comment"
        assert json.loads(body) == {"postId": 7, "userId": 8, "commentId": 9, "postOwnerId": 10}
        assert headers["X-Notify-Signature"].startswith("sha256=") and "X-Notify-Secret" not in headers

    # a key the caller gives (e.g. derived from its own row) is the one sent; separate calls get separate keys
    with scripted_server([(503, {})] + [(200, OK)] * 2) as stand_in:
        client = NotifyClient(stand_in.url, secret=NOTIFY_SECRET, **FAST)
        assert client.like(1, 2, idempotency_key="like-1-2").idempotency_key == "like-1-2"
        client.like(1, 2)
    sent = [headers["Idempotency-Key"] for _, headers, _ in stand_in.requests]
    assert sent[:2] == ["like-1-2", "like-1-2"] and sent[2] != "like-1-2"
    assert all(headers["X-Notify-Secret"] == NOTIFY_SECRET for _, headers, _ in stand_in.requests)


def test_retries_end_in_unavailable_and_other_answers_are_not_retried() -> None:
    with scripted_server([(503, {"success": False, "error": "try again"})] * 3) as stand_in:
        with pytest.raises(Unavailable) as gave_up:
            NotifyClient(stand_in.url, retries=2, **FAST).post(1, 2)
    assert gave_up.value.status == 503 and gave_up.value.message == "try again" and len(stand_in.requests) == 3
    assert {headers["Idempotency-Key"] for _, headers, _ in stand_in.requests} == {gave_up.value.idempotency_key}

    for status, error in ((409, Conflict), (500, NotifyError), (403, NotifyError)):
        with scripted_server([(status, {"success": False, "error": "no"})]) as stand_in:
            with pytest.raises(error) as refused:
                NotifyClient(stand_in.url, **FAST).post(1, 2)
        assert refused.value.status == status and type(refused.value) is error
        assert len(stand_in.requests) == 1


def test_a_503_retry_after_is_waited_for_up_to_max_backoff() -> None:
    """The service answers a repeat of a key whose first call still runs with 503 and `Retry-After: 1`: a retry
    sooner would only get the same answer."""
    busy = (503, {"success": False, "error": "a request with this Idempotency-Key is in progress"})
    answers = [(*busy, {"Retry-After": "1"}), (*busy, {"Retry-After": "60"}), (*busy, {"Retry-After": "soon"})]
    with scripted_server([*answers, (200, OK)]) as stand_in:
        waits: list[float] = []
        NotifyClient(stand_in.url, retries=3, backoff=0.01, max_backoff=5, sleep=waits.append).post(1, 2)
    assert waits[:2] == [1.0, 5.0]  # as asked; then capped at max_backoff
    assert waits[2] <= 0.04  # a Retry-After that is no number of seconds: the client's own backoff
    assert len(stand_in.requests) == 4


def test_connection_refused_is_retried_then_unavailable() -> None:
    with silent_listener() as url:
        closed_url = url  # the port is closed again once the listener is gone
    waits: list[float] = []
    with pytest.raises(Unavailable) as refused:
        NotifyClient(closed_url, retries=2, backoff=0.2, max_backoff=0.3, sleep=waits.append).post(1, 2)
    assert len(waits) == 2 and 0.1 <= waits[0] <= 0.2 and 0.15 <= waits[1] <= 0.3  # jittered, capped
    assert refused.value.status is None and not isinstance(refused.value, NotifyTimeout)
    assert isinstance(refused.value.__cause__, OSError)


def test_a_server_that_never_answers_times_out_within_the_bound() -> None:
    with silent_listener() as url:
        started = time.monotonic()
        with pytest.raises(NotifyTimeout) as timed_out:
            NotifyClient(url, timeout=0.2, retries=1, **FAST).like(1, 2)
        elapsed = time.monotonic() - started
    assert timed_out.value.status is None and isinstance(timed_out.value, Unavailable)
    assert 0.4 <= elapsed < 2.0  # two attempts of 0.2 s each, and a short backoff between them


# ---------------------------------------------------------------- the Flask example


@pytest.mark.slow  # starts a server of its own
def test_flask_example_logs_in_serves_the_page_and_its_like_button_notifies_the_owner(
    make_server: ServerFactory,
) -> None:
    server = make_server({"REALTIME_NOTIFY_SECRET": NOTIFY_SECRET}).start()
    owner, liker = server.add_users(2)
    post_id = post_of(server, owner)
    realtime_url = f"http://127.0.0.1:{server.ws_port}"
    app = load_flask_example().create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "flask-example-test",
            "REALTIME_URL": realtime_url,
            "REALTIME_NOTIFY_URL": server.http_url,
            "REALTIME_AUTH_SECRET": SECRET,
            "REALTIME_NOTIFY_SECRET": NOTIFY_SECRET,
            "USERS": {owner: name_of(owner), liker: name_of(liker)},
            "POSTS": {post_id: owner},
        }
    )
    browser = app.test_client()
    assert browser.get("/").headers["Location"] == "/login"
    assert browser.post(f"/posts/{post_id}/like").status_code == 401
    assert name_of(liker) in browser.get("/login").get_data(as_text=True)
    assert browser.post("/login", data={"user_id": str(liker)}).status_code == 302

    page = browser.get("/").get_data(as_text=True)
    script_url = f"{realtime_url}/static/realtime.js"
    assert f'<script src="{script_url}"></script>' in page
    with urllib.request.urlopen(script_url, timeout=10) as script:  # served by the service, as the page loads it
        assert b"RealtimeClient" in script.read()
    (token,) = re.findall(r'token: "([A-Za-z0-9_\-.]+)"', page)
    assert verify_token(SECRET, token) == liker
    with server.client() as page_socket:  # the page's token opens a socket, as the page's client would
        assert page_socket.connect(liker, token)["userId"] == liker

    with server.connect(owner) as owner_socket:
        liked = browser.post(f"/posts/{post_id}/like")
        assert liked.status_code == 200
        assert liked.get_json() == {"liked": True, "notified": True, "recipients": 1, "online": 1}
        frame = owner_socket.expect("notification", postId=post_id)
        assert_notification(frame, "like", liker, post_id, f"{name_of(liker)} liked your post")
    assert browser.post(f"/posts/{post_id + 1}/like").status_code == 404


# ---------------------------------------------------------------- the package, built and installed


@pytest.mark.slow  # builds a package and a venv
def test_package_builds_installs_alone_and_notifies(server: ServerProcess, tmp_path: Path) -> None:
    python = build_into_fresh_venv(tmp_path)
    owner, liker = server.add_users(2)
    post_id = post_of(server, owner)
    code = (
        "import importlib.util, realtime_notify as r\n"
        "assert importlib.util.find_spec('flask') is None and importlib.util.find_spec('gevent') is None\n"
        f"result = r.NotifyClient({server.http_url!r}).like({post_id}, {liker})\n"
        f"print(r.__version__, result.recipients, result.online, r.mint_token({SECRET!r}, {liker}))\n"
    )
    with server.connect(owner) as owner_socket:
        version, recipients, online, token = run_in_venv(python, code, cwd=tmp_path).split()
        owner_socket.expect("notification", postId=post_id, actorId=liker)
    assert (version, recipients, online) == ("0.2.0", "1", "1")
    assert verify_token(SECRET, token) == liker
