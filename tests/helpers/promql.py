"""The metric names a PromQL expression reads, and whether a `/metrics` answer exposes them.

Enough of PromQL for the expressions of deploy/: strings, label matchers, ranges and grouping clauses are removed
first, then every identifier left that is not called as a function nor a keyword is a metric name.
"""

from __future__ import annotations

import re

KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
    | {"inf", "nan"}
)
# a name with these endings reads the family without them: a histogram's or a summary's series, a counter's samples
SUFFIXES = {
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "counter": ("_total",),
}
# series Prometheus makes for each scrape itself, not read from /metrics
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_IDENTIFIER = re.compile(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = _OFFSET.sub("", text)
    return {name for name, call in _IDENTIFIER.findall(text) if not call and name not in KEYWORDS}


def exposed_families(exposition: str) -> dict[str, str]:
    """The families of a `/metrics` answer, by name, with their type (`# TYPE` lines: also those without samples)."""
    families = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            families[name] = kind
    return families


def is_exposed(name: str, families: dict[str, str]) -> bool:
    """Whether a query for `name` finds a series of one of `families`."""
    if families.get(name) is not None:
        return True
    return any(
        name == family + suffix for family, kind in families.items() for suffix in SUFFIXES.get(kind, ())
    )
