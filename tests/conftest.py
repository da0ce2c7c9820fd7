"""Fixtures shared by the tiers: real service processes on SQLite and on a throwaway MariaDB.

`REALTIME_TEST_BACKENDS` (default `sqlite,mysql`) chooses the backends the
integration tests run on; MariaDB comes from `scripts/install-system-deps.sh`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers.mariadb import MariaDB, start_mariadb
from tests.helpers.server import BACKENDS, DatabaseFactory, ServerFactory, ServerProcess, mysql_database

TESTS = Path(__file__).parent
TIERS = ("unit", "integration", "system")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the folder it is in, so that `-m` selects tiers as paths do."""
    for item in items:
        if item.path.is_relative_to(TESTS) and (tier := item.path.relative_to(TESTS).parts[0]) in TIERS:
            item.add_marker(tier)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    server = start_mariadb(tmp_path_factory.mktemp("mariadb"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def new_database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DatabaseFactory:
    """`new_database(backend)`: the REALTIME_DATABASE_* environment of an empty database."""

    def make(backend: str) -> dict[str, str]:
        if backend == "sqlite":
            path = tmp_path_factory.mktemp("sqlite") / "realtime.sqlite3"
            return {"REALTIME_DATABASE_BACKEND": "sqlite", "REALTIME_DATABASE_PATH": str(path)}
        return mysql_database(request.getfixturevalue("mariadb"), f"realtime_{uuid.uuid4().hex[:12]}")

    return make


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A running service shared by the tests of one module (each test uses its own users)."""
    process = ServerProcess(tmp_path_factory.mktemp(f"server-{request.param}"), new_database(request.param))
    process.start()
    yield process
    process.stop()
    process.close_storage()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_server(
    backend: str, new_database: DatabaseFactory, tmp_path: Path
) -> Iterator[ServerFactory]:
    """`make_server(extra_env=None)`: a not yet started service of this test's own, on `backend`."""
    made: list[ServerProcess] = []
    database = new_database(backend)

    def make(extra_env: dict[str, str] | None = None) -> ServerProcess:
        process = ServerProcess(tmp_path / f"server{len(made)}", database, extra_env)
        made.append(process)
        return process

    yield make
    for process in made:
        process.kill()
        process.close_storage()
