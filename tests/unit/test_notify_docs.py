"""docs/notify-api.md documents every notify route of the HTTP API and every public name of realtime_notify."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
import realtime_notify
from flask import Flask

from tests.helpers.docs import code_spans, code_words
from web.http_api import api

DOCUMENT = "notify-api.md"
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}  # answered for every route; the document says so once
_ANY = re.compile(r"<any\(([^)]*)\):\w+>")


def notify_routes() -> list[str]:
    """"METHOD /notify/..." for each route of the blueprint under /notify, `any(...)` parts spelled out."""
    app = Flask(__name__)
    app.register_blueprint(api)
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/notify/"):
            continue
        paths = [rule.rule]
        while any(_ANY.search(path) for path in paths):
            paths = [
                path[: match.start()] + choice.strip() + path[match.end() :]
                for path in paths
                for match in [_ANY.search(path)]
                for choice in match.group(1).split(",")
            ]
        assert not any("<" in path for path in paths), f"{rule.rule}: a route part this test cannot spell out"
        routes += [f"{method} {path}" for path in paths for method in sorted(rule.methods - IMPLICIT_METHODS)]
    return routes


def public_names() -> list[str]:
    """The package's exports, the public methods of its classes and the fields of its results."""
    names = list(realtime_notify.__all__)
    for name in realtime_notify.__all__:
        exported = getattr(realtime_notify, name)
        if not inspect.isclass(exported):
            continue
        names += [member for member, _ in inspect.getmembers(exported, inspect.isfunction) if member[0] != "_"]
        if dataclasses.is_dataclass(exported):
            names += [field.name for field in dataclasses.fields(exported)]
    return sorted(set(names))


def test_the_routes_are_found() -> None:
    assert {"POST /notify/post", "POST /notify/comment", "POST /notify/like"} <= set(notify_routes())


@pytest.mark.parametrize("route", notify_routes())
def test_each_notify_route_is_documented(route: str) -> None:
    assert route in code_spans(DOCUMENT), f"docs/{DOCUMENT} does not document `{route}`"


@pytest.mark.parametrize("name", public_names())
def test_each_public_name_of_the_python_client_is_documented(name: str) -> None:
    assert name in code_words(DOCUMENT), f"docs/{DOCUMENT} does not mention realtime_notify's `{name}`"
