"""The Alembic migrations build exactly the schema of storage/tables.py, on both databases.

Alembic's own comparison (``schema_differences``) must find nothing after upgrading an
empty database, and the migrations must go down to nothing and up again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from securelogin.storage import migrate
from securelogin.storage.engine import make_engine
from securelogin.storage.tables import metadata
from tests.databases import postgres_schema_url, sqlite_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database that holds nothing yet."""
    if request.param == "sqlite":
        engine = make_engine(sqlite_url(tmp_path))
        yield engine
        engine.dispose()
        return
    with postgres_schema_url() as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrading_an_empty_database_gives_exactly_the_tables_of_tables_py(
    empty_engine: Engine,
) -> None:
    assert table_names(empty_engine) == set()

    migrate.upgrade(empty_engine)

    assert migrate.schema_differences(empty_engine) == []
    assert table_names(empty_engine) == set(metadata.tables) | {"alembic_version"}


def test_upgrading_twice_changes_nothing(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)

    migrate.upgrade(empty_engine)

    assert migrate.schema_differences(empty_engine) == []


def test_downgrade_to_base_removes_every_table_and_upgrade_builds_them_again(
    empty_engine: Engine,
) -> None:
    migrate.upgrade(empty_engine)

    migrate.downgrade(empty_engine, "base")

    assert table_names(empty_engine) <= {"alembic_version"}
    migrate.upgrade(empty_engine)
    assert migrate.schema_differences(empty_engine) == []
    assert table_names(empty_engine) == set(metadata.tables) | {"alembic_version"}
