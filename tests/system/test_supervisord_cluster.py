"""Two nodes and Redis under the real supervisord, with the repository's supervisord-cluster.conf.

The test runs a copy of the file (see tests/helpers/supervision.py) that gives Redis
and both nodes free loopback ports and puts data/ (logs, the control socket,
Redis's directory, the shared SQLite file and the demo secret) in a temporary
directory. Programs, start order, demo mode and cluster settings are the
file's own, and so are the tokens: demo tokens from node a, which node b
accepts because both nodes keep the same demo secret beside the database.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import pytest
from supervisor.datatypes import dict_of_key_value_pairs

from tests.helpers.notifications import assert_notification, assert_ok, notify
from tests.helpers.operations import stored_messages
from tests.helpers.server import REPO_ROOT, ServerProcess
from tests.helpers.supervision import (
    CLUSTER_PROGRAMS,
    CLUSTER_REDIS_PORT,
    COMMAND_TIMEOUT,
    SupervisedCluster,
    exited,
    read_config,
    refuses,
    supervised_cluster,
    wait_running,
)
from web.demo import DEMO_FOLLOWS, DEMO_POSTS, DEMO_USERS

pytestmark = pytest.mark.slow

RESTART_TIMEOUT = 30.0  # a restarting node closes its sockets within its drain ([server] drain_timeout, 10 s)


def count_rows(node: ServerProcess, table: str) -> int:
    return node.storage.engine.transaction(lambda session: session.query(f"SELECT COUNT(*) FROM {table}"))[0][0]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SupervisedCluster]:
    with supervised_cluster(tmp_path) as started:
        yield started


def test_the_file_runs_redis_first_then_two_demo_nodes_joined_through_it() -> None:
    """What docs/scaling.md promises of supervisord-cluster.conf, read from the file itself."""
    config = read_config(REPO_ROOT / "supervisord-cluster.conf")
    programs = [section.removeprefix("program:") for section in config.sections() if section.startswith("program:")]
    assert programs == list(CLUSTER_PROGRAMS)
    redis = dict(config.items("program:redis"))
    assert redis["command"].split()[:5] == ["redis-server", "--bind", "127.0.0.1", "--port", str(CLUSTER_REDIS_PORT)]
    assert '--save ""' in redis["command"] and "--appendonly no" in redis["command"]  # pub/sub only: keep nothing
    assert "--dir %(here)s/data/redis" in redis["command"]
    ports = {}
    for name in ("a", "b"):
        node = dict(config.items(f"program:realtime-{name}"))
        assert int(redis["priority"]) < int(node["priority"]), "Redis must start before the nodes, and stop after"
        assert node["command"] == "%(here)s/.venv/bin/python -m web --demo --config %(here)s/config.ini"
        assert (node["stopsignal"], node["stopwaitsecs"]) == ("TERM", "20")
        environment = dict_of_key_value_pairs(node["environment"])
        assert environment["REALTIME_CLUSTER_BACKEND"] == "redis"
        assert environment["REALTIME_CLUSTER_REDIS_URL"] == f"redis://127.0.0.1:{CLUSTER_REDIS_PORT}/0"
        assert environment["REALTIME_CLUSTER_NODE_NAME"] == name
        assert not any(key.startswith(("REALTIME_DATABASE_", "REALTIME_AUTH_")) for key in environment)
        ports[name] = (environment["REALTIME_SERVER_WS_PORT"], environment["REALTIME_SERVER_HTTP_PORT"])
    assert ports == {"a": ("8080", "8081"), "b": ("8090", "8091")}


def test_users_on_two_nodes_chat_get_notified_lose_nothing_in_a_node_restart_and_shutdown_stops_all(
    cluster: SupervisedCluster,
) -> None:
    control, a, b = cluster.control, cluster.a, cluster.b
    control.start()
    assert cluster.wait_joined(a)["node"] == "a"
    assert cluster.wait_joined(b)["node"] == "b"
    for program in CLUSTER_PROGRAMS:
        wait_running(control, program)
    started = (control.data_dir / "supervisord-cluster.log").read_text()
    assert started.index("spawned: 'redis'") < started.index("spawned: 'realtime-a'")

    # both nodes started at once on one new SQLite file, and the demo data is there once
    assert a.storage.list_users() == DEMO_USERS
    assert (count_rows(a, "follows"), count_rows(a, "posts")) == (len(DEMO_FOLLOWS), len(DEMO_POSTS))

    alice_id, bob_id = a.add_users(2)
    alice, bob = cluster.connect(a, alice_id), cluster.connect(b, bob_id)

    # chat across the nodes, with every receipt
    alice.message(bob_id, "hello from node a", "sc-1")
    hello = alice.expect("message_sent", clientMsgId="sc-1")["messageId"]
    received = bob.expect("message", messageId=hello)
    assert (received["from"], received["to"], received["content"]) == (alice_id, bob_id, "hello from node a")
    alice.expect("message_delivered", messageId=hello, clientMsgId="sc-1")
    bob.send({"type": "message_read", "messageId": hello})
    alice.expect("message_read", messageId=hello, readBy=bob_id)
    bob.message(alice_id, "hi from node b", "sc-2")
    reply = bob.expect("message_sent", clientMsgId="sc-2")["messageId"]
    assert alice.expect("message", messageId=reply)["content"] == "hi from node b"
    bob.expect("message_delivered", messageId=reply)

    # the notify API of node a reaches the owner, who is connected to node b only
    assert_ok(notify(a, "like", postId=5001, userId=alice_id, postOwnerId=bob_id), recipients=1, online=1)
    assert_notification(bob.expect("notification"), "like", alice_id, 5001, f"user{alice_id} liked your post")

    # node a restarts: its sockets (alice's, and bob's second one) see 1001 and come back on node b
    bob_on_a = cluster.connect(a, bob_id)
    first_pid = control.program_pid("realtime-a")
    with ThreadPoolExecutor(1) as pool:
        alice.message(bob_id, "sent as node a goes away", "sc-3")  # its message_sent may never come
        restarting = pool.submit(control.ctl, "restart", "realtime-a")
        assert alice.expect_close(RESTART_TIMEOUT) == 1001
        assert bob_on_a.expect_close(RESTART_TIMEOUT) == 1001
        bob.assert_alive()
        bob.message(alice_id, "while alice is away", "sc-4")
        away = bob.expect("message_sent", clientMsgId="sc-4")["messageId"]

        alice = cluster.connect(b, alice_id)
        assert alice.expect("message", messageId=away)["content"] == "while alice is away"
        bob.expect("message_delivered", messageId=away)
        alice.message(bob_id, "sent as node a goes away", "sc-3")  # the client's outbox sends it again
        in_flight = alice.expect("message_sent", clientMsgId="sc-3")["messageId"]
        assert bob.expect("message", messageId=in_flight)["content"] == "sent as node a goes away"
        bob.assert_no_frame("message", messageId=in_flight)  # once, whether or not node a stored it first

        output = restarting.result(COMMAND_TIMEOUT)
    assert "realtime-a: stopped" in output and "realtime-a: started" in output, output
    assert exited(first_pid, 10), "the old node a is still running"

    # the restarted node joins the cluster again: a socket on it gets what node b's users send
    cluster.wait_joined(a)
    with cluster.connect(a, bob_id) as bob_on_a:
        alice.message(bob_id, "to both of bob's nodes", "sc-5")
        last = alice.expect("message_sent", clientMsgId="sc-5")["messageId"]
        assert bob_on_a.expect("message", messageId=last)["content"] == "to both of bob's nodes"
        assert bob.expect("message", messageId=last)["content"] == "to both of bob's nodes"

    alice.send({"type": "history", "with": bob_id})
    history = alice.expect("history")["messages"]
    assert [m["messageId"] for m in history] == sorted([hello, reply, in_flight, away, last])
    rows = stored_messages(a, [alice_id, bob_id])
    assert sorted(row.client_msg_id for row in rows) == ["sc-1", "sc-2", "sc-3", "sc-4", "sc-5"]
    alice.close()
    bob.close()

    # shutdown stops the nodes (draining, with Redis still up) before Redis, and leaves nothing running
    pids = {program: control.program_pid(program) for program in CLUSTER_PROGRAMS}
    supervisord_pid = control.pid
    assert "Shut down" in control.ctl("shutdown")
    assert supervisord_pid is not None and exited(supervisord_pid, 60), "supervisord is still running"
    for program, pid in pids.items():
        assert exited(pid, 5), f"{program} outlived supervisord"
    log = (control.data_dir / "supervisord-cluster.log").read_text()
    stopped = {name: log.rindex(f"stopped: {name} (exit status 0)") for name in CLUSTER_PROGRAMS}
    assert stopped["realtime-a"] < stopped["redis"] and stopped["realtime-b"] < stopped["redis"], log
    for port in (a.ws_port, a.http_port, b.ws_port, b.http_port, cluster.redis_port):
        assert refuses(port)
