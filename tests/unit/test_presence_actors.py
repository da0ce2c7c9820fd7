"""Presence in the actors, with a cluster backend the test drives: the changes it delivers (repeated, decided on
this node or another) reach each watching socket once, only the deciding node stores lastSeen, and a `CatchUp`
after an outage pushes the states that changed meanwhile. SQLite on a temporary path; every wait is on an event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import pykka
import pytest

from actors import Node
from actors.messages import Broadcast, CatchUp, ConnectedCount
from cluster import LocalCluster
from routing import PresenceChange
from settings import Settings
from storage import Storage, open_storage
from tests.helpers.actors import TIMEOUT, FakeTransport, connect, send, unit_settings

ANN, BOB = 1, 2
OFFLINE = {"userId": BOB, "online": False, "lastSeen": None}
ONLINE = {"userId": BOB, "online": True, "lastSeen": None}


class DrivenCluster(LocalCluster):
    """A node among others as far as presence goes: the test names the users present on other nodes and delivers
    the backend's changes itself."""

    def __init__(self) -> None:
        super().__init__("unit")
        self.elsewhere: set[int] = set()

    def present_among(self, user_ids: Iterable[int]) -> set[int]:
        return set(user_ids) & self.elsewhere

    def deliver(self, change: PresenceChange, decided_here: bool = False) -> None:
        self._presence_changed([change], decided_here)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return unit_settings(tmp_path)


@pytest.fixture
def storage(settings: Settings) -> Iterator[Storage]:
    storage = open_storage(settings.database)
    storage.prepare()
    storage.add_users([(ANN, "ann"), (BOB, "bob")])
    storage.add_follows([(ANN, BOB)])
    yield storage
    storage.close()


@pytest.fixture
def cluster() -> DrivenCluster:
    return DrivenCluster()


@pytest.fixture
def node(storage: Storage, settings: Settings, cluster: DrivenCluster) -> Iterator[Node]:
    node = Node(storage, settings, cluster)
    yield node
    node.shutdown(TIMEOUT)


def watching_bob(node: Node) -> tuple[pykka.ActorRef, list[FakeTransport]]:
    """Ann's actor and two sockets of hers, each watching bob (offline), their answers read."""
    sockets = []
    for _ in range(2):
        ann, socket = connect(node, ANN)
        socket.expect("connected")
        send(ann, socket, type="watch", userIds=[BOB])
        assert socket.expect("presence")["users"] == [OFFLINE]
        sockets.append(socket)
    return ann, sockets


def assert_nothing_more(node: Node, ann: pykka.ActorRef, sockets: list[FakeTransport]) -> None:
    """Once the router has forwarded all it was told, a ping on each socket is answered next: nothing else came."""
    node.router.ask(ConnectedCount(), timeout=TIMEOUT)
    for socket in sockets:
        send(ann, socket, type="ping")
        socket.expect("pong")


def test_a_change_the_cluster_repeats_reaches_each_watching_socket_once(node: Node, cluster: DrivenCluster) -> None:
    ann, sockets = watching_bob(node)
    cluster.deliver(PresenceChange(BOB, True))
    cluster.deliver(PresenceChange(BOB, True))  # a backend may repeat a change: a socket is told a state once
    for socket in sockets:
        assert socket.expect("presence")["users"] == [ONLINE]
    assert_nothing_more(node, ann, sockets)


def test_only_the_node_that_decided_an_offline_change_stores_its_last_seen(
    node: Node, cluster: DrivenCluster, storage: Storage
) -> None:
    ann, sockets = watching_bob(node)
    cluster.deliver(PresenceChange(BOB, False, 1_000))  # decided on another node: stored there
    cluster.deliver(PresenceChange(BOB, True))
    cluster.deliver(PresenceChange(BOB, False, 2_000), decided_here=True)
    offline = {"userId": BOB, "online": False, "lastSeen": "1970-01-01T00:00:02.000Z"}
    for socket in sockets:
        assert [socket.expect("presence")["users"] for _ in range(2)] == [[ONLINE], [offline]]
    assert node.last_seen_writer.wait_committed(0, TIMEOUT)
    assert storage.last_seen([BOB]) == {BOB: 2_000}


def test_catch_up_pushes_the_states_that_changed_during_an_outage(node: Node, cluster: DrivenCluster) -> None:
    ann, sockets = watching_bob(node)
    cluster.elsewhere.add(BOB)  # bob came online on another node while its change could not travel
    node.router.tell(Broadcast(CatchUp()))
    for socket in sockets:
        assert socket.expect("presence")["users"] == [ONLINE]
    node.router.tell(Broadcast(CatchUp()))  # nothing changed since: nothing to push
    assert_nothing_more(node, ann, sockets)
