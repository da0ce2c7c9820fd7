"""The lock-free hot-path metrics expose what prometheus_client's own would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from metrics import FastHistogram, LabelledCounter

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
