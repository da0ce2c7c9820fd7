"""Presence across the nodes of a cluster joined through a real redis-server: deployment-wide online and offline,
a killed node's users going offline within a bounded time, and a Redis restart.

Each test starts its own nodes on its own database, with a short grace period and a short node record lifetime.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from tests.helpers.client import Client
from tests.helpers.notifications import QUIET
from tests.helpers.redis_server import RedisServer
from tests.helpers.server import ServerFactory, ServerProcess

GRACE = 0.5  # [presence] grace_seconds of these nodes
TTL = 1.5  # [cluster] presence_ttl_seconds of these nodes
RECOVERY_TIMEOUT = 15.0  # Redis back: the nodes reconnect within their longest backoff (5 s), and then some
# a killed node's record expires after TTL, and another node looks for expired records every TTL / 3
DEAD_NODE_BOUND = TTL + TTL / 3 + 1.0


def start_nodes(make_server: ServerFactory, redis_server: RedisServer, count: int) -> list[ServerProcess]:
    env = {
        "REALTIME_CLUSTER_BACKEND": "redis",
        "REALTIME_CLUSTER_REDIS_URL": redis_server.url,
        "REALTIME_CLUSTER_PRESENCE_TTL_SECONDS": str(TTL),
        "REALTIME_PRESENCE_GRACE_SECONDS": str(GRACE),
    }
    return [make_server({**env, "REALTIME_CLUSTER_NODE_NAME": f"node-{n}"}).start() for n in range(1, count + 1)]


def watch(socket: Client, user_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Send `watch` and answer its `presence` entries by user id."""
    socket.send({"type": "watch", "userIds": user_ids})
    answer = socket.expect("presence")
    entries = {entry["userId"]: entry for entry in answer["users"]}
    assert sorted(entries) == sorted(user_ids), answer
    return entries


def next_change(socket: Client, timeout: float = 5.0) -> dict[str, Any]:
    """The one entry of the next presence update this socket gets."""
    frame = socket.expect("presence", timeout=timeout)
    [entry] = frame["users"]
    return entry


def watcher_of(node: ServerProcess, watched: list[int]) -> tuple[int, Client]:
    """A new user who follows `watched` (so may see their presence), connected to `node`."""
    [watcher_id] = node.add_users(1)
    node.storage.add_follows([(watcher_id, user_id) for user_id in watched])
    return watcher_id, node.connect(watcher_id)


@pytest.mark.slow
def test_first_socket_anywhere_is_online_everywhere_and_last_socket_anywhere_is_offline_after_the_grace(
    make_server: ServerFactory, redis_server: RedisServer
) -> None:
    n1, n2 = start_nodes(make_server, redis_server, 2)
    [bob_id] = n1.add_users(1)
    _, watcher = watcher_of(n1, [bob_id])
    with watcher:
        assert watch(watcher, [bob_id])[bob_id] == {"userId": bob_id, "online": False, "lastSeen": None}

        bob_on_2 = n2.connect(bob_id)
        assert next_change(watcher) == {"userId": bob_id, "online": True, "lastSeen": None}
        bob_on_1 = n1.connect(bob_id)  # a second socket, on another node: nothing changes
        bob_on_2.close()  # a socket is left, on node 1
        watcher.assert_no_frame("presence", within=GRACE + QUIET)

        with n2.connect(bob_id):  # a reload onto the other node within the grace: no flap
            bob_on_1.close()
            watcher.assert_no_frame("presence", within=GRACE + QUIET)
        last_seen = expect_offline(watcher, bob_id)["lastSeen"]

    # the node that decided it stored lastSeen: a watcher on the other node reads it
    _, other_watcher = watcher_of(n2, [bob_id])
    with other_watcher:
        assert watch(other_watcher, [bob_id])[bob_id] == {"userId": bob_id, "online": False, "lastSeen": last_seen}


@pytest.mark.slow
def test_users_of_a_killed_node_go_offline_everywhere_within_the_record_lifetime(
    make_server: ServerFactory, redis_server: RedisServer
) -> None:
    doomed, survivor = start_nodes(make_server, redis_server, 2)
    bob_id, carol_id = doomed.add_users(2)
    _, watcher = watcher_of(survivor, [bob_id, carol_id])
    with watcher, doomed.connect(bob_id) as bob, survivor.connect(carol_id):
        entries = watch(watcher, [bob_id, carol_id])
        assert entries[bob_id]["online"] is True and entries[carol_id]["online"] is True
        killed_at = time.monotonic()
        doomed.kill()
        assert bob.expect_close() == 1006
        expect_offline(watcher, bob_id, timeout=DEAD_NODE_BOUND)
        took = time.monotonic() - killed_at
        assert took > TTL / 2, f"offline after {took:.2f} s: before the dead node's record could expire"
        # Carol's socket is on the surviving node: she stays online
        watcher.assert_no_frame("presence", within=QUIET)

        with survivor.connect(bob_id):  # Bob back, on the surviving node
            assert next_change(watcher) == {"userId": bob_id, "online": True, "lastSeen": None}


def iso_seconds(text: str) -> float:
    """Seconds since the epoch of an ISO time such as 2026-11-26T06:05:25.123Z."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
def test_presence_survives_a_redis_restart_and_converges_to_who_is_really_connected(
    make_server: ServerFactory, own_redis: RedisServer
) -> None:
    n1, n2 = start_nodes(make_server, own_redis, 2)
    bob_id, carol_id, dave_id = n1.add_users(3)
    _, watcher = watcher_of(n1, [bob_id, carol_id, dave_id])
    with watcher, n2.connect(bob_id) as bob:
        carol = n1.connect(carol_id)
        told = {user_id: entry["online"] for user_id, entry in watch(watcher, [bob_id, carol_id, dave_id]).items()}
        assert told == {bob_id: True, carol_id: True, dave_id: False}

        own_redis.stop()
        wait_cluster([n1, n2], "degraded")
        carol.close()  # leaves during the outage, from the watcher's node: shown there after the grace
        expect_offline(watcher, carol_id)
        dave = n2.connect(dave_id)  # arrives during the outage, on the other node

        own_redis.start()  # empty: Redis forgot every node's users
        wait_cluster([n1, n2], "ok")
        told.update({carol_id: False})
        expect_converged(watcher, told, {bob_id: True, carol_id: False, dave_id: True})

        # Redis holds the deployment's presence again: a new watcher on either node reads it, and it changes live
        for node in (n1, n2):
            _, fresh = watcher_of(node, [bob_id, carol_id, dave_id])
            with fresh:
                answer = watch(fresh, [bob_id, carol_id, dave_id])
                assert {user_id: entry["online"] for user_id, entry in answer.items()} == {
                    bob_id: True,
                    carol_id: False,
                    dave_id: True,
                }
        bob.close()
        expect_offline(watcher, bob_id)
        dave.close()


def wait_cluster(nodes: list[ServerProcess], state: str) -> None:
    for node in nodes:
        node.wait_health(lambda _, body: body["cluster"] == state, f"{node.http_url} cluster {state}", RECOVERY_TIMEOUT)


def expect_offline(socket: Client, user_id: int, timeout: float = 5.0) -> dict[str, Any]:
    """The next presence update: `user_id` went offline, seen last a moment ago."""
    entry = next_change(socket, timeout)
    assert entry["userId"] == user_id and entry["online"] is False, entry
    assert abs(iso_seconds(entry["lastSeen"]) - time.time()) < timeout + 2.0, entry
    return entry


def expect_converged(socket: Client, told: dict[int, bool], expected: dict[int, bool]) -> None:
    """Read this socket's presence updates until what it was last told of each user is `expected` (after an outage
    a node may first tell what another node has not yet put back in Redis), then nothing more comes."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while told != expected:
        entry = next_change(socket, timeout=max(0.01, deadline - time.monotonic()))
        assert told[entry["userId"]] is not entry["online"], f"told {entry} twice in a row"
        told[entry["userId"]] = entry["online"]
    socket.assert_no_frame("presence", within=QUIET)
