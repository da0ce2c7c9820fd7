"""The service's Prometheus metrics, recorded where things happen and served at `GET /metrics`.

The metric objects are not registered anywhere here: each HTTP app registers
them in its own registry (see `web.http_api`), so tests can build apps
repeatedly in one process. Gauges that are cheaper to read than to keep up
to date (open sockets, mailbox depths) are collected at scrape time instead.

What is counted for every frame or message uses `LabelledCounter` and
`FastHistogram`: plain numbers that the hub's thread updates and a scrape
reads, exposed through prometheus_client's metric families. The library's
own metrics take a lock per update (a gevent lock here), which cost about 5 %
of the CPU per chat message.

A bottom module: it imports nothing of this service. Label values that only
an upper layer knows (the close codes) are declared by that layer.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import accumulate
from typing import Iterable, Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000)


OTHER = "other"


class LabelledCounter:
    """A counter by one label; `count(value)` is a dict update. Only the hub's thread may count.

    With `known` (given here or declared later by the layer that knows the values), any other value is counted
    as `other`: label values a client chooses would otherwise grow the metric (and every scrape) without bound.
    """

    def __init__(self, name: str, documentation: str, label: str, known: frozenset[str] | None = None):
        self._name, self._documentation, self._label = name, documentation, label
        self._known = known
        self._counts: dict[str, int] = {}

    def declare(self, known: Iterable[str]) -> None:
        """Count these values by name from now on, and any other as `other`."""
        self._known = frozenset(known)

    def count(self, value: str, amount: int = 1) -> None:
        if self._known is not None and value not in self._known:
            value = OTHER
        self._counts[value] = self._counts.get(value, 0) + amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, count in sorted(self._counts.items()):
            family.add_metric([value], count)
        yield family


class FastHistogram:
    """A histogram whose `observe` is a bisect and two additions. Only the hub's thread may observe."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]):
        self._name, self._documentation = name, documentation
        self._bounds = list(buckets)
        self._counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self._sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1  # a value equal to a bound belongs to its bucket
        self._sum += value

    def collect(self) -> Iterator[Metric]:
        cumulative = list(accumulate(self._counts))
        bounds = [floatToGoString(bound) for bound in self._bounds] + ["+Inf"]
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=list(zip(bounds, cumulative)), sum_value=self._sum
        )


frames_received = LabelledCounter(
    "realtime_frames_received", "Text frames received from clients, by frame type ('invalid' if unreadable)", "type"
)
frames_sent = LabelledCounter("realtime_frames_sent", "Text frames handed to the kernel, by frame type", "type")
errors_sent = LabelledCounter("realtime_errors", "`error` frames sent, by code", "code")
# the server answers a client's close frame with the client's code: the codes counted by name are declared by the
# WebSocket layer, which knows them (`web.ws.transport`)
sockets_closed = LabelledCounter(
    "realtime_sockets_closed",
    "Close frames sent by the server, by close code ('other' for a code a client chose outside the known ones)",
    "code",
)
message_store_seconds = FastHistogram(
    "realtime_message_store_seconds",
    "From a `message` frame's turn to its `message_sent`: the durable store",
    LATENCY_BUCKETS,
)
message_delivery_seconds = FastHistogram(
    "realtime_message_delivery_seconds",
    "From a message's creation to its first write to a socket of the recipient",
    LATENCY_BUCKETS,
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
fanouts_running = Gauge(
    "realtime_fanouts_running", "Notify calls whose notifications are being stored and pushed", ["kind"], registry=None
)
notifications_stored = Counter(
    "realtime_notifications_stored",
    "Notifications committed by notify calls, by kind: the fan-outs' progress, counted per batch",
    ["kind"],
    registry=None,
)
db_pool_wait_seconds = Histogram(
    "realtime_db_pool_wait_seconds",
    "Time spent waiting for a database connection",
    buckets=LATENCY_BUCKETS,
    registry=None,
)
db_errors = Counter("realtime_db_errors", "Database operations that failed as unavailable", registry=None)
cluster_pushes = LabelledCounter(
    "realtime_cluster_pushes",
    "Pushes between nodes through Redis, by outcome: published, received, dropped (Redis down), malformed",
    "outcome",
)
cluster_presence = LabelledCounter(
    "realtime_cluster_presence_changes",
    "Presence changes through Redis, by outcome: published (online or offline in the deployment), reaped (users of "
    "a node that stopped renewing its record), local (shown on this node only while Redis was down)",
    "outcome",
)

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
    fanouts_running,
    notifications_stored,
    db_pool_wait_seconds,
    db_errors,
    cluster_pushes,
    cluster_presence,
)
