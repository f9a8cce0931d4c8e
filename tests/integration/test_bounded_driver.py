"""storage/bounded_driver.py against a real PostgreSQL, with no relay in between.

A statement the server runs past the bound ends the wait, and the connection is closed as
lost; one that answers within it is untouched; a wait given a timeout by its caller keeps
that timeout. The driver is psycopg's own class with one method overridden on the strength
of psycopg's ``Connection.wait`` (its timeout, its private ``_WaitTimeout``): a psycopg
release that changed either fails here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg import errors
from sqlalchemy.engine import make_url

from securelogin.storage import pipeline
from securelogin.storage.bounded_driver import BoundedConnection
from securelogin.storage.engine import make_engine
from tests.databases import postgres_base_url, require_postgres

BOUND_SECONDS = 0.5


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[BoundedConnection]:
    require_postgres()
    monkeypatch.setattr(pipeline, "ANSWER_TIMEOUT_SECONDS", BOUND_SECONDS)
    conninfo = make_url(postgres_base_url()).set(drivername="postgresql")
    with BoundedConnection.connect(conninfo.render_as_string(hide_password=False)) as opened:
        yield opened


@pytest.mark.postgres
def test_a_statement_running_past_the_bound_ends_the_wait_and_the_connection(
    connection: BoundedConnection,
) -> None:
    with pytest.raises(errors.OperationalError, match=r"did not answer within 0\.5 seconds"):
        connection.execute("SELECT pg_sleep(30)")
    assert connection.closed  # lost: never used again, SQLAlchemy replaces it


@pytest.mark.postgres
def test_a_statement_answering_within_the_bound_is_untouched(
    connection: BoundedConnection,
) -> None:
    assert connection.execute("SELECT 1 FROM pg_sleep(0.05)").fetchone() == (1,)
    connection.rollback()  # the rollback's own wait, bounded too
    assert not connection.closed


@pytest.mark.postgres
def test_a_wait_given_its_own_timeout_keeps_it(connection: BoundedConnection) -> None:
    """``notifies(timeout=...)`` catches psycopg's wait timeout itself: longer than the
    bound here, and the connection stays open."""
    connection.autocommit = True
    assert list(connection.notifies(timeout=3 * BOUND_SECONDS)) == []
    assert not connection.closed


@pytest.mark.postgres
def test_the_engine_opens_bounded_connections() -> None:
    require_postgres()
    engine = make_engine(postgres_base_url())
    try:
        with engine.connect() as connection:
            assert isinstance(connection.connection.dbapi_connection, BoundedConnection)
    finally:
        engine.dispose()


def test_postgresql_through_another_driver_is_refused() -> None:
    with pytest.raises(ValueError, match="psycopg 3"):
        make_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/test")
