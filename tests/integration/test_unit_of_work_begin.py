"""storage/unit_of_work.py: a transaction that cannot begin gives its connection back at once.

On SQLite, ``BEGIN IMMEDIATE`` waits for the write lock for the busy timeout and then
fails ("database is locked"): the unit of work answers 503, and the connection it took
must go back to the pool then, not whenever the garbage collector finds it (the error's
traceback keeps it alive for as long as the error is kept: logged, retried, raised on).

A read-only unit of work takes no write lock on SQLite (a deferred BEGIN) and is
REPEATABLE READ READ ONLY on PostgreSQL; neither changes how the others begin.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from securelogin.domain.errors import ServiceUnavailableError
from securelogin.storage import engine as engines
from securelogin.storage.unit_of_work import SqlUnitOfWork, unit_of_work_factory
from tests.conftest import upgrade_database
from tests.databases import postgres_schema_url, sqlite_url


def test_a_unit_of_work_that_cannot_begin_returns_its_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url(tmp_path)
    upgrade_database(url)
    monkeypatch.setattr(engines, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.2)
    engine = engines.make_engine(url)
    holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock throughout
        new_unit_of_work = unit_of_work_factory(engine)

        with pytest.raises(ServiceUnavailableError) as refused:
            with new_unit_of_work():
                pytest.fail("began while another writer held the lock")

        assert refused.value.__cause__ is not None  # the error, and its traceback, kept
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        holder.execute("ROLLBACK")
        with new_unit_of_work() as uow:  # the pool still serves
            uow.commit()
    finally:
        holder.close()
        engine.dispose()


def test_a_read_only_unit_of_work_on_sqlite_takes_no_write_lock(tmp_path: Path) -> None:
    """It begins deferred: a writer begins and commits while it reads, and it goes on
    reading its snapshot; the next unit of work, on the same connection, is BEGIN IMMEDIATE
    again."""
    url = sqlite_url(tmp_path)
    upgrade_database(url)
    engine = engines.make_engine(url)
    new_unit_of_work = unit_of_work_factory(engine)
    writer = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=0)
    try:
        with new_unit_of_work(read_only=True) as uow:
            assert uow.audit.head()[0] == 0  # the snapshot is fixed by this first read
            writer.execute("BEGIN IMMEDIATE")  # not "database is locked"
            writer.execute("UPDATE audit_head SET seq = 7")
            writer.execute("COMMIT")
            assert uow.audit.head()[0] == 0  # still its snapshot
        with new_unit_of_work() as uow:
            assert uow.audit.head()[0] == 7
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                writer.execute("BEGIN IMMEDIATE")  # this one holds the write lock
    finally:
        writer.close()
        engine.dispose()


@pytest.mark.postgres
def test_a_read_only_unit_of_work_on_postgresql_reads_one_snapshot_and_writes_nothing() -> None:
    """REPEATABLE READ READ ONLY; the connection goes back to the pool as it was."""
    with postgres_schema_url() as url:
        upgrade_database(url)
        engine = engines.make_engine(url, pool_size=1)  # so one connection, taken in turn
        new_unit_of_work = unit_of_work_factory(engine)
        try:
            with new_unit_of_work(read_only=True) as uow:
                connection = cast(SqlUnitOfWork, uow)._connection  # its connection, to look at
                assert connection is not None
                assert settings_of(connection) == ("repeatable read", "on")
                with pytest.raises(DBAPIError, match="read-only"):
                    connection.exec_driver_sql("UPDATE audit_head SET seq = 7")
            with new_unit_of_work() as uow:
                connection = cast(SqlUnitOfWork, uow)._connection  # its connection, to look at
                assert connection is not None
                assert settings_of(connection) == ("read committed", "off")
            assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        finally:
            engine.dispose()


def settings_of(connection: Connection) -> tuple[str, str]:
    isolation = connection.exec_driver_sql("SHOW transaction_isolation").scalar_one()
    read_only = connection.exec_driver_sql("SHOW transaction_read_only").scalar_one()
    return str(isolation), str(read_only)
