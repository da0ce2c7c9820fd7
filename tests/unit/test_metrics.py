"""The lock-free hot-path metrics expose what prometheus_client's own would; the node's health and fan-out metrics
say what /healthz and the notifier do."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from gevent.event import AsyncResult
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import metrics
from actors import Node
from actors.messages import Notify
from cluster import LocalCluster
from metrics import FastHistogram, LabelledCounter, sockets_closed
from protocol.notify import NotifyRequest
from storage import Notification, NotificationDraft, StorageUnavailable, open_storage
from tests.helpers.actors import TIMEOUT, unit_settings
from web.http_api import create_http_app
from web.ws.transport import COUNTED_CLOSE_CODES

BUCKETS = (0.01, 0.1, 1.0)


def exposition(*collectors) -> str:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry).decode()


def samples(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line and not line.startswith("#") and "_created" not in line)


def test_a_labelled_counter_exposes_the_same_samples_as_a_prometheus_counter():
    ours = LabelledCounter("x_frames", "frames", "type")
    theirs = Counter("x_frames", "frames", ["type"], registry=None)
    for value in ["message", "ping", "message", "invalid", "message"]:
        ours.count(value)
        theirs.labels(value).inc()
    assert samples(exposition(ours)) == samples(exposition(theirs))


def test_a_fast_histogram_exposes_the_same_samples_as_a_prometheus_histogram():
    ours = FastHistogram("x_seconds", "latency", BUCKETS)
    theirs = Histogram("x_seconds", "latency", buckets=BUCKETS, registry=None)
    for value in [0.0, 0.005, 0.01, 0.0100001, 0.5, 1.0, 3.0, 99.0]:  # bounds themselves included
        ours.observe(value)
        theirs.observe(value)
    assert samples(exposition(ours)) == samples(exposition(theirs))


def test_nothing_counted_yet_still_exposes_the_metric():
    text = exposition(FastHistogram("x_seconds", "latency", BUCKETS))
    assert 'x_seconds_bucket{le="+Inf"} 0.0' in text and "x_seconds_count 0.0" in text


def test_a_counter_with_known_values_counts_every_other_value_as_other():
    counter = LabelledCounter("x_closed", "closes", "code", known=frozenset({"1000", "4401"}))
    for value in ["1000", "4401", "3999", "4000", "1000", "x" * 1000]:
        counter.count(value)
    assert samples(exposition(counter)) == [
        'x_closed_total{code="1000"} 2.0',
        'x_closed_total{code="4401"} 1.0',
        'x_closed_total{code="other"} 3.0',
    ]


def test_close_codes_a_client_chooses_become_other_beyond_the_known_ones():
    """The server echoes a client's close code; 4,000 distinct codes must not become 4,000 time series."""
    for code in range(1000, 5000):
        sockets_closed.count(str(code))
    labels = {line.split('code="')[1].split('"')[0] for line in samples(exposition(sockets_closed))}
    assert labels == {str(code) for code in COUNTED_CLOSE_CODES} | {"other"}


# ------------------------------------------------------------ metrics of a node


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A node on SQLite whose notifier stores two notifications per batch."""
    settings = unit_settings(tmp_path, REALTIME_NOTIFY_FANOUT_BATCH="2")
    storage = open_storage(settings.database)
    storage.prepare()
    node = Node(storage, settings, LocalCluster("unit"))
    yield node
    node.shutdown(TIMEOUT)
    storage.close()


def sample(metric: Any, name: str, **labels: str) -> float:
    registry = CollectorRegistry()
    registry.register(metric)
    return registry.get_sample_value(name, labels) or 0.0


def test_realtime_database_up_is_0_exactly_when_healthz_answers_503(
    node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = create_http_app(unit_settings(tmp_path), node).test_client()

    def database_up() -> float:
        families = text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        [family] = [family for family in families if family.name == "realtime_database_up"]
        return family.samples[0].value

    assert client.get("/healthz").status_code == 200 and database_up() == 1

    def refuse() -> None:
        raise StorageUnavailable("the database is down (unit test)")

    monkeypatch.setattr(node.storage, "check", refuse)
    assert client.get("/healthz").status_code == 503 and database_up() == 0


def test_a_fan_out_counts_its_stored_notifications_batch_by_batch_while_it_shows_as_running(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    followers = [10, 11, 12, 13, 14]
    node.storage.add_users([(1, "ann"), *((user, f"follower{user}") for user in followers)])
    node.storage.add_posts([(900, 1)])
    node.storage.add_follows([(user, 1) for user in followers])
    stored_before = sample(metrics.notifications_stored, "realtime_notifications_stored_total", kind="post")
    seen: list[tuple[float, float]] = []  # (running, stored so far) as each batch is stored
    store = node.storage.store_notifications

    def store_and_look(drafts: list[NotificationDraft]) -> list[Notification]:
        seen.append(
            (
                sample(metrics.fanouts_running, "realtime_fanouts_running", kind="post"),
                sample(metrics.notifications_stored, "realtime_notifications_stored_total", kind="post")
                - stored_before,
            )
        )
        return store(drafts)

    monkeypatch.setattr(node.storage, "store_notifications", store_and_look)
    reply = AsyncResult()
    node.notifier.tell(Notify(NotifyRequest(kind="post", post_id=900, actor_id=1), reply))

    assert reply.get(timeout=TIMEOUT).recipients == 5
    assert seen == [(1, 0), (1, 2), (1, 4)]  # batches of 2, 2 and 1
    assert sample(metrics.fanouts_running, "realtime_fanouts_running", kind="post") == 0
    assert sample(metrics.notifications_stored, "realtime_notifications_stored_total", kind="post") - stored_before == 5
