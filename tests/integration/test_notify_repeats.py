"""Repeated notify calls store once: an `Idempotency-Key` answers a repeat with the first answer (another body
with the key: 409), and without a key a repeated comment or like is still stored once, sequential or
concurrent, across a restart, on both database backends.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.helpers.notifications import Reply, assert_failure, assert_ok, ids, notify, post_form, post_of
from tests.helpers.server import ServerFactory, ServerProcess, new_user_ids

CONCURRENT = 8  # requests sent at once with one key or one comment
DAY_MS = 24 * 3600 * 1000


def new_key() -> str:
    return f"key-{new_user_ids(1)[0]}"


def unread(server: ServerProcess, user_id: int) -> int:
    with server.connect(user_id) as socket:
        return socket.connected["unreadNotifications"]


def author_with_followers(server: ServerProcess, count: int) -> tuple[int, list[int], int]:
    author, *followers = server.add_users(count + 1)
    server.storage.add_follows([(follower, author) for follower in followers])
    return author, followers, post_of(server, author)


def at_once(count: int, call: Any) -> list[Reply]:
    """`call()` from `count` threads released together; their replies."""
    barrier = threading.Barrier(count)
    replies: list[Reply] = []

    def run() -> None:
        barrier.wait(timeout=10)
        replies.append(call())

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(replies) == count
    return replies


# ---------------------------------------------------------------- Idempotency-Key


def test_a_repeat_with_the_key_gets_the_first_answer_and_stores_nothing(server: ServerProcess) -> None:
    author, followers, post_id = author_with_followers(server, 2)
    key = new_key()
    with server.connect(followers[0]) as socket:
        first = notify(server, "post", {"Idempotency-Key": key}, postId=post_id, userId=author)
        assert_ok(first, recipients=2, online=1)
        socket.expect("notification", postId=post_id)
        repeat = notify(server, "post", {"Idempotency-Key": key}, postId=post_id, userId=author)
        assert (repeat.status, repeat.raw) == (first.status, first.raw)
        socket.assert_no_frame("notification", within=0.3)
    assert [unread(server, follower) for follower in followers] == [1, 1]

    # without the key, or with another one, a post is a new post notification
    assert_ok(notify(server, "post", {"Idempotency-Key": new_key()}, postId=post_id, userId=author), 2, 0)
    assert_ok(notify(server, "post", postId=post_id, userId=author), 2, 0)
    assert [unread(server, follower) for follower in followers] == [3, 3]


def test_the_key_with_another_body_or_endpoint_is_409(server: ServerProcess) -> None:
    author, followers, post_id = author_with_followers(server, 1)
    key = new_key()
    assert_ok(notify(server, "post", {"Idempotency-Key": key}, postId=post_id, userId=author), 1, 0)
    another_post = post_of(server, author)
    assert_failure(notify(server, "post", {"Idempotency-Key": key}, postId=another_post, userId=author), 409)
    assert_failure(notify(server, "like", {"Idempotency-Key": key}, postId=post_id, userId=followers[0]), 409)
    assert unread(server, followers[0]) == 1
    assert unread(server, author) == 0


def test_a_json_and_a_form_body_asking_the_same_are_one_request(server: ServerProcess) -> None:
    author, followers, post_id = author_with_followers(server, 1)
    key = new_key()
    first = notify(server, "post", {"Idempotency-Key": key}, postId=post_id, userId=author)
    repeat = post_form(server, "/notify/post", {"postId": post_id, "userId": author}, {"Idempotency-Key": key})
    assert (repeat.status, repeat.raw) == (first.status, first.raw)
    assert unread(server, followers[0]) == 1


def test_the_first_answer_is_given_again_even_a_404(server: ServerProcess) -> None:
    author, follower = server.add_users(2)
    server.storage.add_follows([(follower, author)])
    (post_id,) = ids(1)
    key = new_key()
    assert_failure(notify(server, "post", {"Idempotency-Key": key}, postId=post_id, userId=author), 404)
    server.storage.add_posts([(post_id, author)])
    assert_failure(notify(server, "post", {"Idempotency-Key": key}, postId=post_id, userId=author), 404)
    assert unread(server, follower) == 0
    assert_ok(notify(server, "post", {"Idempotency-Key": new_key()}, postId=post_id, userId=author), 1, 0)


def test_a_key_of_128_characters_is_fine_and_a_longer_one_is_400(server: ServerProcess) -> None:
    author, followers, post_id = author_with_followers(server, 1)
    longest = new_key().ljust(128, "x")
    assert_ok(notify(server, "post", {"Idempotency-Key": longest}, postId=post_id, userId=author), 1, 0)
    assert_failure(
        notify(server, "post", {"Idempotency-Key": new_key().ljust(129, "x")}, postId=post_id, userId=author),
        400,
        "Idempotency-Key",
    )
    assert unread(server, followers[0]) == 1


def test_concurrent_repeats_of_one_key_store_once(server: ServerProcess) -> None:
    author, followers, post_id = author_with_followers(server, 3)
    key = new_key()
    headers = {"Idempotency-Key": key}
    replies = at_once(CONCURRENT, lambda: notify(server, "post", headers, postId=post_id, userId=author))
    # each got the first answer, or was told to retry while the first was still running
    answered = [reply for reply in replies if reply.status == 200]
    assert answered and all(reply.status == 503 for reply in replies if reply.status != 200), replies
    assert {reply.raw for reply in answered} == {answered[0].raw}
    assert [unread(server, follower) for follower in followers] == [1, 1, 1]
    later = notify(server, "post", {"Idempotency-Key": key}, postId=post_id, userId=author)
    assert (later.status, later.raw) == (200, answered[0].raw)


def test_an_expired_key_is_purged_and_claimed_anew(server: ServerProcess) -> None:
    """The 24 h window, with the clock handed in: a key older than the window is purged by the next claim."""
    storage = server.storage
    key, now = new_key(), 10 * DAY_MS
    assert storage.claim_idempotency_key(key, "a" * 64, now, now - DAY_MS, now - 1000) is None
    storage.record_idempotent_answer(key, 200, "{}")
    later = now + DAY_MS - 1
    held = storage.claim_idempotency_key(key, "b" * 64, later, later - DAY_MS, later - 1000)
    assert (held.request_hash, held.status, held.answer) == ("a" * 64, 200, "{}")
    expired = now + DAY_MS + 1
    assert storage.claim_idempotency_key(key, "b" * 64, expired, expired - DAY_MS, expired - 1000) is None


def test_an_unanswered_claim_is_released_when_stale(server: ServerProcess) -> None:
    """A node that stopped mid-request leaves its claim unanswered: after the stale limit the key is free."""
    storage = server.storage
    key, now = new_key(), 20 * DAY_MS
    assert storage.claim_idempotency_key(key, "a" * 64, now, now - DAY_MS, now - 60_000) is None
    held = storage.claim_idempotency_key(key, "a" * 64, now + 1, now + 1 - DAY_MS, now + 1 - 60_000)
    assert held.status is None
    stale = now + 60_001
    assert storage.claim_idempotency_key(key, "a" * 64, stale, stale - DAY_MS, stale - 60_000) is None


@pytest.mark.slow  # starts servers of its own
def test_the_key_holds_across_a_restart(make_server: ServerFactory) -> None:
    first_run = make_server().start()
    author, followers, post_id = author_with_followers(first_run, 1)
    key = new_key()
    first = notify(first_run, "post", {"Idempotency-Key": key}, postId=post_id, userId=author)
    assert_ok(first, 1, 0)
    first_run.stop()
    second_run = make_server().start()  # the same database
    repeat = notify(second_run, "post", {"Idempotency-Key": key}, postId=post_id, userId=author)
    assert (repeat.status, repeat.raw) == (first.status, first.raw)
    assert unread(second_run, followers[0]) == 1


# ---------------------------------------------------------------- without a key


def test_a_repeated_comment_is_stored_once_and_another_comment_is_not(server: ServerProcess) -> None:
    owner, commenter = server.add_users(2)
    post_id = post_of(server, owner)
    comment_id, other_comment = ids(2)
    with server.connect(owner) as socket:
        assert_ok(notify(server, "comment", postId=post_id, userId=commenter, commentId=comment_id), 1, 1)
        socket.expect("notification", commentId=comment_id)
        assert_ok(notify(server, "comment", postId=post_id, userId=commenter, commentId=comment_id), 1, 0)
        socket.assert_no_frame("notification", within=0.3)
        assert_ok(notify(server, "comment", postId=post_id, userId=commenter, commentId=other_comment), 1, 1)
        socket.expect("notification", commentId=other_comment)
    assert unread(server, owner) == 2


def test_a_repeated_like_is_stored_once_and_anothers_like_is_not(server: ServerProcess) -> None:
    owner, liker, other_liker = server.add_users(3)
    post_id, other_post = post_of(server, owner), post_of(server, owner)
    for _ in range(2):
        assert_ok(notify(server, "like", postId=post_id, userId=liker), 1, 0)
    assert_ok(notify(server, "like", postId=post_id, userId=other_liker), 1, 0)
    assert_ok(notify(server, "like", postId=other_post, userId=liker), 1, 0)
    assert unread(server, owner) == 3


@pytest.mark.parametrize("kind", ["comment", "like"])
def test_concurrent_repeats_without_a_key_store_once(server: ServerProcess, kind: str) -> None:
    owner, actor = server.add_users(2)
    post_id = post_of(server, owner)
    fields = {"postId": post_id, "userId": actor, **({"commentId": ids(1)[0]} if kind == "comment" else {})}
    replies = at_once(CONCURRENT, lambda: notify(server, kind, **fields))
    for reply in replies:
        assert_ok(reply, 1, 0)
    assert unread(server, owner) == 1
