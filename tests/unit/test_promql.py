"""The PromQL name extraction the operator's kit tests use (tests/helpers/promql.py)."""

from __future__ import annotations

import pytest

from tests.helpers.promql import exposed_families, is_exposed, metric_names

EXPOSITION = """\
# HELP a_seconds latency
# TYPE a_seconds histogram
# TYPE b_total counter
# TYPE c gauge
c 1.0
"""


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="realtime"} == 0', {"up"}),
        (
            'histogram_quantile(0.95, sum by (le, writer) (rate(a_seconds_bucket{job=~"$job"}[$__rate_interval])))',
            {"a_seconds_bucket"},
        ),
        ("c > 1000 and delta(c[10m]) > 0", {"c"}),
        (
            'sum(rate(b_total{code="rate(x)"}[5m] offset 1h)) / on (instance) group_left (kind) c * 1e3',
            {"b_total", "c"},
        ),
        ("sum without (le) (d) > bool inf unless e", {"d", "e"}),
    ],
)
def test_the_names_an_expression_reads_are_its_metrics_without_functions_labels_or_keywords(
    expr: str, names: set[str]
) -> None:
    assert metric_names(expr) == names


def test_a_name_is_exposed_as_a_family_or_a_series_of_one_even_without_samples() -> None:
    families = exposed_families(EXPOSITION)
    assert families == {"a_seconds": "histogram", "b_total": "counter", "c": "gauge"}
    for name in ("a_seconds_bucket", "a_seconds_sum", "a_seconds_count", "b_total", "c"):
        assert is_exposed(name, families), name
    for name in ("a_seconds_total", "c_bucket", "d", "a_second"):
        assert not is_exposed(name, families), name
