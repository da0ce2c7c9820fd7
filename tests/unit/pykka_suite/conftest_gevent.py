"""The conftest of pykka's own test suite when it runs against this service's runtime.

`tests/unit/test_pykka_suite.py` extracts pykka's tests from its sdist, renames their
`tests/conftest.py` to `tests/pykka_conftest.py` and puts this file in its place. Every fixture
stays pykka's but two: `runtime`, which is `GeventActor` with `GeventFuture` here, and `mocker`,
the little of pytest-mock those tests use, so that the suite needs no extra dependency.
`tests` below is pykka's test package, not this repository's.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any, Iterator
from unittest import mock

import gevent
import gevent.event
import pytest

from actors.runtime import GeventActor, GeventFuture
from tests.pykka_conftest import *  # noqa: F403  (every fixture of pykka's conftest, `runtime` overridden below)
from tests.pykka_conftest import _stop_all  # noqa: F401  (a star import leaves out private names)
from tests.types import Runtime

GEVENT_RUNTIME = Runtime(
    name="gevent",
    actor_class=GeventActor,
    event_class=gevent.event.Event,
    future_class=GeventFuture,
    sleep_func=gevent.sleep,
)


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    return GEVENT_RUNTIME


@pytest.fixture
def mocker() -> Iterator[SimpleNamespace]:
    """pytest-mock's fixture as far as pykka's tests use it: mock classes, and `patch.object` undone after the test."""
    with contextlib.ExitStack() as patches:

        def patch_object(*args: Any, **kwargs: Any) -> Any:
            return patches.enter_context(mock.patch.object(*args, **kwargs))

        yield SimpleNamespace(
            Mock=mock.Mock,
            MagicMock=mock.MagicMock,
            NonCallableMock=mock.NonCallableMock,
            patch=SimpleNamespace(object=patch_object),
        )
