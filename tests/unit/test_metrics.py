"""The lock-free hot-path metrics expose what prometheus_client's own would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from metrics import FastHistogram, LabelledCounter, sockets_closed
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
