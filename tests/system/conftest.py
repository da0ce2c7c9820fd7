"""Fixtures of the system tier: a Redis server for the cluster, and Chromium for the browser tests."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.helpers.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server shared by the session's cluster tests; tests that stop it start their own."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
