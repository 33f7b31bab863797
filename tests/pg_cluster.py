"""Test helper: one throwaway PostgreSQL server for the whole test session, and EC-CUBE databases in it.

The server is real (Debian's `postgresql` package: `.ci/run` installs it when `initdb` is missing), started
by `connectors.sources.ec_cube.pg_cluster.ThrowawayPostgres` in a temporary folder, listening on a Unix
socket there only, and stopped and removed when the session ends. Each test gets its own database, created
from EC-CUBE's real DDL and master data (`connectors/sources/ec_cube/schema_postgres.sql`), owned by an
application user, with a user that may only read it.

    from pg_cluster import postgres, eccube  # noqa: F401  (fixtures)

    def test_something(eccube):
        with eccube.connect() as con: ...            # the shop application's user (writes)
        EcCubeSource(eccube.reader_url, ...)          # kizuna's user (reads only)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from connectors.sources.ec_cube import demo
from connectors.sources.ec_cube.pg_cluster import ThrowawayPostgres

_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[ThrowawayPostgres]:
    """The session's PostgreSQL server (started once, about a second)."""
    cluster = ThrowawayPostgres().start()
    try:
        yield cluster
    finally:
        cluster.remove()


def new_database(cluster: ThrowawayPostgres, mail_magazine: bool = True) -> demo.DemoDatabase:
    """A fresh EC-CUBE database (schema, master data, the mail magazine plugin's column unless told not to)."""
    return demo.create_database(cluster, name=f"eccube{next(_names)}", mail_magazine=mail_magazine)


@pytest.fixture
def eccube(postgres: ThrowawayPostgres) -> Iterator[demo.DemoDatabase]:
    """An empty EC-CUBE 4.2 database of this test's own, with the mail magazine plugin installed."""
    db = new_database(postgres)
    yield db
    postgres.execute(f'drop database "{db.database}" with (force)')
