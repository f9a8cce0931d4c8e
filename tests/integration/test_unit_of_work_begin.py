"""storage/unit_of_work.py: a transaction that cannot begin gives its connection back at once.

On SQLite, ``BEGIN IMMEDIATE`` waits for the write lock for the busy timeout and then
fails ("database is locked"): the unit of work answers 503, and the connection it took
must go back to the pool then, not whenever the garbage collector finds it (the error's
traceback keeps it alive for as long as the error is kept: logged, retried, raised on).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from securelogin.domain.errors import ServiceUnavailableError
from securelogin.storage import engine as engines
from securelogin.storage.unit_of_work import unit_of_work_factory
from tests.conftest import upgrade_database
from tests.databases import sqlite_url


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
