"""storage/engine.py: a pooled PostgreSQL connection that has idled is pinged before use.

``pool_pre_ping`` would ping before every transaction (a round trip more on each of a
login's transactions); instead only a connection idle in the pool for more than
``POSTGRES_IDLE_PING_SECONDS`` is pinged, and replaced if its server is gone (a database
restarted while the service was quiet). A connection taken straight back is not pinged:
if its server died in that moment, its first statement fails, the connection is
invalidated, and the unit of work answers 503 (tests/failures/test_database_cut.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from securelogin.storage import engine as engines
from tests.databases import postgres_schema_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with postgres_schema_url() as url:
        yield url


def backend_of(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(engine: Engine, pid: int) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        connection.commit()


def test_an_idle_connection_whose_server_went_away_is_replaced_unnoticed(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = postgres_url
    monkeypatch.setattr(engines, "POSTGRES_IDLE_PING_SECONDS", 0.0)  # every one has idled
    engine = engines.make_engine(database_url, pool_size=1)
    try:
        first = backend_of(engine)
        killer = engines.make_engine(database_url)
        terminate(killer, first)
        killer.dispose()
        assert backend_of(engine) != first  # pinged, found dead, replaced: no error
    finally:
        engine.dispose()


def test_a_connection_taken_straight_back_is_not_pinged(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = postgres_url
    monkeypatch.setattr(engines, "POSTGRES_IDLE_PING_SECONDS", 3600.0)
    engine = engines.make_engine(database_url, pool_size=1)
    killer = engines.make_engine(database_url)
    try:
        terminate(killer, backend_of(engine))
        with pytest.raises(DBAPIError) as raised, engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated
        assert backend_of(engine) > 0  # the invalidated connection was replaced
    finally:
        engine.dispose()
        killer.dispose()
