"""The service's Prometheus metrics, recorded where things happen and served at `GET /metrics`.

The metric objects are not registered anywhere here: each HTTP app registers
them in its own registry (see `web.http_api`), so tests can build apps
repeatedly in one process. Gauges that are cheaper to read than to keep up
to date (open sockets, mailbox depths) are collected at scrape time instead.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000)

frames_received = Counter(
    "realtime_frames_received",
    "Text frames received from clients, by frame type ('invalid' if unreadable)",
    ["type"],
    registry=None,
)
frames_sent = Counter(
    "realtime_frames_sent", "Text frames handed to the kernel, by frame type", ["type"], registry=None
)
errors_sent = Counter("realtime_errors", "`error` frames sent, by code", ["code"], registry=None)
sockets_closed = Counter(
    "realtime_sockets_closed", "Close frames sent by the server, by close code", ["code"], registry=None
)
message_store_seconds = Histogram(
    "realtime_message_store_seconds",
    "From a `message` frame's turn to its `message_sent`: the durable store",
    buckets=LATENCY_BUCKETS,
    registry=None,
)
message_delivery_seconds = Histogram(
    "realtime_message_delivery_seconds",
    "From a message's creation to its first write to a socket of the recipient",
    buckets=LATENCY_BUCKETS,
    registry=None,
)
batch_seconds = Histogram(
    "realtime_batch_seconds",
    "Time of one group-commit batch, by writer",
    ["writer"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
batch_items = Histogram(
    "realtime_batch_items",
    "Items in one group-commit batch, by writer",
    ["writer"],
    buckets=SIZE_BUCKETS,
    registry=None,
)
fanout_recipients = Histogram(
    "realtime_fanout_recipients", "Recipients of one notify call", ["kind"], buckets=SIZE_BUCKETS, registry=None
)
fanout_seconds = Histogram(
    "realtime_fanout_seconds",
    "Time to store (and push) one notify call's notifications",
    ["kind"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
db_pool_wait_seconds = Histogram(
    "realtime_db_pool_wait_seconds",
    "Time spent waiting for a database connection",
    buckets=LATENCY_BUCKETS,
    registry=None,
)
db_errors = Counter("realtime_db_errors", "Database operations that failed as unavailable", registry=None)

def by_label(metric: Counter) -> Callable[[str], Counter]:
    """`metric.labels(value)`, remembered per value: `labels()` takes a lock and builds a key on every call,
    and frames are counted on the hot path. Callers pass values from a small fixed set."""
    children: dict[str, Counter] = {}

    def child(value: str) -> Counter:
        found = children.get(value)
        if found is None:
            found = children[value] = metric.labels(value)
        return found

    return child


frame_received = by_label(frames_received)
frame_sent = by_label(frames_sent)
error_sent = by_label(errors_sent)
socket_closed = by_label(sockets_closed)

ALL = (
    frames_received,
    frames_sent,
    errors_sent,
    sockets_closed,
    message_store_seconds,
    message_delivery_seconds,
    batch_seconds,
    batch_items,
    fanout_recipients,
    fanout_seconds,
    db_pool_wait_seconds,
    db_errors,
)
