"""Presence (`watch`, `presence`) against the real server on both databases: the answer to a watch, a push when a
watched user's first socket opens and when its last one closed a grace period ago (a reload inside the grace is
no change), lastSeen stored, and nothing at all for the users the contract's privacy rule hides.

Absence is asserted by order, never by waiting: a marker user whose change takes the same path (the router's
presence, then the watcher's actor) is changed after the one that must not come, and its push arrives first or
alone.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any, Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from protocol.frames import MAX_WATCHED, CloseCode
from tests.helpers.attack import Bystander, assert_rss_growth_bounded, rss_kib
from tests.helpers.client import Client
from tests.helpers.server import BACKENDS, DatabaseFactory, ServerFactory, ServerProcess

GRACE = 1.0  # seconds; short, so the offline tests are quick, and long enough to reconnect inside it
PRESENCE_ENV = {
    "REALTIME_PRESENCE_GRACE_SECONDS": str(GRACE),
    "REALTIME_DATABASE_BLOCKS_CACHE_SECONDS": "0",  # a block takes effect at once
}


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A service with a grace period of GRACE seconds, shared by the tests of this module (each with its own users)."""
    process = ServerProcess(
        tmp_path_factory.mktemp(f"presence-{request.param}"), new_database(request.param), PRESENCE_ENV
    )
    process.start()
    yield process
    process.stop()
    process.close_storage()


def follow(server: ServerProcess, follower: int, *followees: int) -> None:
    server.storage.add_follows([(follower, followee) for followee in followees])


def watch(client: Client, *user_ids: int) -> list[dict[str, Any]]:
    """Send a watch and return the `users` of its answer."""
    client.send({"type": "watch", "userIds": list(user_ids)})
    return client.expect("presence")["users"]


def pushes_until(client: Client, user_id: int, online: bool) -> list[dict[str, Any]]:
    """Every presence entry pushed before the one saying `user_id` is `online`, that one last."""
    entries: list[dict[str, Any]] = []
    while True:
        (entry,) = client.expect("presence")["users"]
        entries.append(entry)
        if entry["userId"] == user_id and entry["online"] is online:
            return entries


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- storage


def test_last_seen_keeps_the_latest_time_of_each_user(server: ServerProcess) -> None:
    storage = server.storage
    first, second, never = server.add_users(3)
    storage.record_last_seen([(first, 2_000), (first, 1_000), (second, 5_000)])
    storage.record_last_seen([(first, 1_500), (second, 6_000)])  # an older close of `first` does not win
    assert storage.last_seen([first, second, never]) == {first: 2_000, second: 6_000}


def test_presence_is_visible_to_followers_and_conversations_but_not_to_the_blocked(server: ServerProcess) -> None:
    watcher, followed, talked_to, follows_watcher, stranger, blocker = server.add_users(6)
    follow(server, watcher, followed, blocker)
    follow(server, follows_watcher, watcher)  # following the watcher shows the watcher nothing
    server.block(blocker, watcher)
    with server.connect(watcher) as client:
        client.message(talked_to, "hello", "c-1")
        client.expect("message_sent", clientMsgId="c-1")
    everyone = [followed, talked_to, follows_watcher, stranger, blocker]
    assert server.storage.presence_visible(watcher, everyone) == {followed, talked_to}
    assert server.storage.presence_visible(talked_to, everyone + [watcher]) == {watcher}  # a conversation has two sides


# ---------------------------------------------------------------- the answer to watch


def test_watch_answers_online_offline_with_last_seen_and_null_for_the_invisible(server: ServerProcess) -> None:
    watcher, online, offline, unknown, stranger = server.add_users(5)
    follow(server, watcher, online, offline, unknown)
    server.storage.record_last_seen([(offline, 1_795_673_125_123)])
    with server.connect(online), server.connect(stranger), server.connect(watcher) as client:
        users = watch(client, online, offline, unknown, stranger, online)
    assert users == [
        {"userId": online, "online": True, "lastSeen": None},
        {"userId": offline, "online": False, "lastSeen": "2026-11-26T06:05:25.123Z"},
        {"userId": unknown, "online": False, "lastSeen": None},
        {"userId": stranger, "online": None, "lastSeen": None},  # neither followed nor talked to
    ]


def test_a_user_who_blocked_the_watcher_shows_as_unknown(server: ServerProcess) -> None:
    watcher, blocker = server.add_users(2)
    follow(server, watcher, blocker)
    server.block(blocker, watcher)
    with server.connect(blocker), server.connect(watcher) as client:
        assert watch(client, blocker) == [{"userId": blocker, "online": None, "lastSeen": None}]


# ---------------------------------------------------------------- pushes


def test_the_first_socket_pushes_online_and_a_second_socket_pushes_nothing(server: ServerProcess) -> None:
    watcher, watched, marker = server.add_users(3)
    follow(server, watcher, watched, marker)
    with server.connect(watcher) as client:
        assert [u["online"] for u in watch(client, watched, marker)] == [False, False]
        with server.connect(watched):
            assert pushes_until(client, watched, True) == [{"userId": watched, "online": True, "lastSeen": None}]
            with server.connect(watched), server.connect(marker):
                assert pushes_until(client, marker, True) == [{"userId": marker, "online": True, "lastSeen": None}]


def test_offline_is_pushed_a_grace_period_after_the_last_close_with_last_seen(server: ServerProcess) -> None:
    watcher, watched = server.add_users(2)
    follow(server, watcher, watched)
    with server.connect(watcher) as client:
        watch(client, watched)
        with server.connect(watched):
            pushes_until(client, watched, True)
        closed = time.time()
        (offline,) = pushes_until(client, watched, False)
        waited = time.time() - closed
        assert waited >= GRACE * 0.9, f"offline pushed {waited:.2f} s after the close, within the grace period"
        assert closed - 1 <= epoch(offline["lastSeen"]) <= closed + 1
        assert watch(client, watched) == [offline]  # the stored lastSeen, in a later answer


def test_a_user_connected_when_the_service_stops_is_offline_afterwards_with_the_stop_as_last_seen(
    make_server: ServerFactory,
) -> None:
    server = make_server(PRESENCE_ENV).start()
    watcher, watched = server.add_users(2)
    follow(server, watcher, watched)
    with server.connect(watched) as page:
        stopped = time.time()
        assert server.stop() == 0
        assert page.expect_close() == CloseCode.GOING_AWAY
    server.start()
    with server.connect(watcher) as client:
        (entry,) = watch(client, watched)
    assert entry["online"] is False
    assert stopped - 1 <= epoch(entry["lastSeen"]) <= time.time()


def test_a_reload_within_the_grace_period_pushes_no_offline(server: ServerProcess) -> None:
    watcher, watched, marker = server.add_users(3)
    follow(server, watcher, watched, marker)
    with server.connect(watcher) as client:
        with server.connect(watched) as page, server.connect(marker) as marker_socket:
            watch(client, watched, marker)
            page.close()
            with server.connect(watched):  # the reload: the last socket is back within the grace period
                marker_socket.close()  # its grace period ends after the closed page's would have
                assert pushes_until(client, marker, False)[:-1] == []


def test_a_socket_is_told_only_about_the_users_it_watches(server: ServerProcess) -> None:
    watcher, first, second = server.add_users(3)
    follow(server, watcher, first, second)
    with server.connect(watcher) as watches_first, server.connect(watcher) as watches_second:
        watch(watches_first, first)
        watch(watches_second, second)
        with server.connect(second), server.connect(first):  # second's change comes first, to both of its sockets
            assert pushes_until(watches_first, first, True) == [{"userId": first, "online": True, "lastSeen": None}]
            assert pushes_until(watches_second, second, True) == [{"userId": second, "online": True, "lastSeen": None}]


def test_no_push_about_a_stranger_or_a_user_who_blocked_the_watcher_since(server: ServerProcess) -> None:
    watcher, stranger, blocker, marker = server.add_users(4)
    follow(server, watcher, blocker, marker)
    with server.connect(watcher) as client:
        assert [u["online"] for u in watch(client, stranger, blocker, marker)] == [None, False, False]
        server.block(blocker, watcher)  # after the watch: the push is checked against the blocks
        with server.connect(stranger), server.connect(blocker), server.connect(marker):
            assert pushes_until(client, marker, True) == [{"userId": marker, "online": True, "lastSeen": None}]


# ---------------------------------------------------------------- bad input and limits


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "watch"}, "bad_request"),
        ({"type": "watch", "userIds": "1,2"}, "bad_request"),
        ({"type": "watch", "userIds": [1, 0]}, "bad_request"),
        ({"type": "watch", "userIds": [1, "2"]}, "bad_request"),
        ({"type": "watch", "userIds": list(range(1, MAX_WATCHED + 2))}, "too_large"),
    ],
    ids=["missing", "not a list", "zero", "a string", "201 ids"],
)
def test_a_bad_watch_is_refused_and_the_socket_stays(server: ServerProcess, frame: dict, code: str) -> None:
    (user,) = server.add_users(1)
    with server.connect(user) as client:
        client.send(frame)
        assert client.expect_error(code)["ref"] == {"type": "watch"}
        client.assert_alive()


def test_watch_frames_count_against_the_rate_limit(make_server: ServerFactory) -> None:
    limited = make_server({"REALTIME_LIMITS_FRAMES_PER_SECOND": "0.1", "REALTIME_LIMITS_FRAME_BURST": "3"}).start()
    watcher, watched = limited.add_users(2)
    with limited.connect(watcher) as client:
        for _ in range(3):
            watch(client, watched)
        client.send({"type": "watch", "userIds": [watched]})
        assert client.expect_error("rate_limited")["ref"] == {"type": "watch"}


def test_full_watch_lists_sent_in_a_loop_keep_memory_bounded_and_a_bystander_served(server: ServerProcess) -> None:
    attacker, bystander_id, *followed = server.add_users(2 + MAX_WATCHED)
    follow(server, attacker, *followed)
    frame = {"type": "watch", "userIds": followed}
    with Bystander(server, bystander_id) as bystander, server.connect(attacker) as client:
        rss_before = rss_kib(server.process.pid)
        with contextlib.suppress(ConnectionClosed):
            for _ in range(2_000):  # past the burst and the strikes
                client.send(frame)
        # refused over the rate limit, or too slow to read the answers: either bound closes it
        assert client.expect_close(30) in (CloseCode.RATE_LIMITED, CloseCode.TRY_AGAIN_LATER)
    bystander.assert_served()
    assert_rss_growth_bounded(server, rss_before)
