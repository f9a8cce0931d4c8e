"""storage/prepared.py: a prepared statement does what ``Connection.execute`` would do.

The statements of every login run on the DBAPI cursor (no SQLAlchemy execution context),
so each property SQLAlchemy would have given them is proven here, on SQLite and on
PostgreSQL: the same rows and Python values (aware UTC times), times stored exactly as
SQLAlchemy stores them (SQLite compares them as text), the statement's own bound values,
SQLAlchemy's exceptions without the parameters, the SQL log, and a lost connection
invalidated so that the unit of work answers 503 and the next transaction works.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, create_engine, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.pool import NullPool

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import Application, build
from securelogin.config import Settings
from securelogin.domain.errors import ServiceUnavailableError
from securelogin.storage import engine as engine_module
from securelogin.storage import migrate
from securelogin.storage.engine import make_engine
from securelogin.storage.prepared import Prepared
from securelogin.storage.tables import lockout_failures, lockout_subjects
from securelogin.storage.types import UtcDateTime
from tests.clock import FakeClock
from tests.conftest import TEST_SECRET_KEY
from tests.databases import postgres_schema_url

WHEN = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)

ADD_SUBJECT = Prepared(lockout_subjects.insert(), columns=("subject", "locked_until"))
ADD_FAILURE = Prepared(
    lockout_failures.insert()
    .values(subject=bindparam("p_subject"), failed_at=bindparam("p_at"))
    .returning(lockout_failures.c.failure_id, lockout_failures.c.failed_at)
)
FAILURES_SINCE = Prepared(
    select(lockout_failures.c.failure_id, lockout_failures.c.failed_at)
    .where(lockout_failures.c.failed_at >= bindparam("p_since"))
    .order_by(lockout_failures.c.failed_at)
)
CLEAR = Prepared(
    update(lockout_subjects)
    .where(lockout_subjects.c.subject == bindparam("p_subject"))
    .values(locked_until=None)
)


def test_rows_values_and_times_are_those_sqlalchemy_would_give(
    application: Application,
) -> None:
    with application.engine.begin() as connection:
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": WHEN})
        made = ADD_FAILURE.run(connection, {"p_subject": "abcde123", "p_at": WHEN}).one()
        ADD_FAILURE.run(connection, {"p_subject": "abcde123", "p_at": WHEN + timedelta(1)})

        assert made.failed_at == WHEN and made.failed_at.tzinfo is UTC
        ours = FAILURES_SINCE.run(connection, {"p_since": WHEN}).rows
        theirs = connection.execute(FAILURES_SINCE.statement, {"p_since": WHEN}).all()
        assert [tuple(row) for row in ours] == [tuple(row) for row in theirs]
        assert [row.failed_at for row in ours] == [WHEN, WHEN + timedelta(1)]
        # Times compare in SQL as SQLAlchemy stored them: one day later is later.
        later = FAILURES_SINCE.run(connection, {"p_since": WHEN + timedelta(hours=1)}).rows
        assert [row.failed_at for row in later] == [WHEN + timedelta(1)]
        stored = connection.execute(select(lockout_subjects.c.locked_until)).scalar_one()
        assert stored == WHEN


def test_values_the_statement_binds_itself_are_sent_and_rowcount_is_given(
    application: Application,
) -> None:
    with application.engine.begin() as connection:
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": WHEN})
        assert CLEAR.run(connection, {"p_subject": "abcde123"}).rowcount == 1
        assert CLEAR.run(connection, {"p_subject": "nobody1"}).rowcount == 0
        locked = connection.execute(select(lockout_subjects.c.locked_until)).scalar_one()
    assert locked is None


def test_a_statement_of_many_rows_writes_every_row(application: Application) -> None:
    rows = [
        {"subject": bindparam(f"s{n}"), "locked_until": bindparam(f"t{n}", type_=UtcDateTime())}
        for n in range(5)
    ]
    many = Prepared(lockout_subjects.insert().values(rows))
    with application.engine.begin() as connection:
        many.run(
            connection,
            {
                **{f"s{n}": f"user{n:04d}" for n in range(5)},
                **{f"t{n}": WHEN + timedelta(n) for n in range(5)},
            },
        )
        stored = connection.execute(
            select(lockout_subjects.c.locked_until).order_by(lockout_subjects.c.subject)
        ).scalars()
        assert list(stored) == [WHEN + timedelta(n) for n in range(5)]


def test_a_driver_error_is_sqlalchemys_and_carries_no_parameters(
    application: Application,
) -> None:
    with application.engine.begin() as connection:
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        with pytest.raises(IntegrityError) as raised:
            ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        assert raised.value.params is None and raised.value.hide_parameters
        assert "INSERT INTO lockout_subjects" in str(raised.value.statement)
        assert not raised.value.connection_invalidated


def test_expanding_parameters_are_refused_when_prepared(application: Application) -> None:
    statement = Prepared(
        select(lockout_subjects).where(
            lockout_subjects.c.subject.in_(bindparam("p_many", expanding=True))
        )
    )
    with application.engine.connect() as connection, pytest.raises(TypeError):
        statement.run(connection, {"p_many": ["a", "b"]})


def test_the_sql_log_shows_prepared_statements_like_any_other(
    application: Application, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    with application.engine.begin() as connection:
        FAILURES_SINCE.run(connection, {"p_since": WHEN})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "FROM lockout_failures" in logged
    assert "[prepared]" in logged and "2026" in logged  # and its parameters


def test_the_sql_log_leaves_out_parameters_the_engine_hides(
    application: Application, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    hiding = create_engine(application.engine.url, hide_parameters=True)
    try:
        with hiding.begin() as connection:
            FAILURES_SINCE.run(connection, {"p_since": WHEN})
    finally:
        hiding.dispose()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "FROM lockout_failures" in logged and "[prepared]" in logged
    assert "2026" not in logged  # the time it was given is not shown


def test_columns_of_one_name_are_refused_rather_than_renamed(application: Application) -> None:
    clashing = Prepared(select(lockout_subjects.c.subject, lockout_failures.c.subject))
    with application.engine.connect() as connection, pytest.raises(ValueError):
        clashing.run(connection)


@pytest.fixture
def postgres_application(clock: FakeClock, fast_hasher: Argon2Hasher) -> Iterator[Application]:
    with postgres_schema_url() as url:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        application = build(
            Settings(database_url=url, secret_key=TEST_SECRET_KEY), clock=clock, hasher=fast_hasher
        )
        yield application
        application.dispose()


@pytest.mark.postgres
def test_a_lost_connection_is_a_503_and_the_next_transaction_works(
    postgres_application: Application,
) -> None:
    application = postgres_application
    with application.engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        connection.rollback()
        terminate(application, pid)
        with pytest.raises(DBAPIError) as raised:
            FAILURES_SINCE.run(connection, {"p_since": WHEN})
        assert raised.value.connection_invalidated
    with pytest.raises(ServiceUnavailableError), application.context.uow() as uow:
        connection = uow._connection  # type: ignore[attr-defined]
        terminate(application, connection.execute(text("SELECT pg_backend_pid()")).scalar())
        uow.lockout.locked_until("abcde123", WHEN)
    with application.context.uow() as uow:  # the pool healed: a working connection
        assert uow.lockout.locked_until("abcde123", WHEN) is None


def terminate(application: Application, pid: int) -> None:
    with application.engine.connect() as killer:
        killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.commit()


@pytest.mark.postgres
def test_a_lost_connection_has_every_older_pooled_connection_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As SQLAlchemy does on a disconnect: a database that went away took every connection
    of the pool with it, so none is handed out again to fail a request of its own."""
    monkeypatch.setattr(engine_module, "POSTGRES_IDLE_PING_SECONDS", 3600.0)  # no ping helps
    with postgres_schema_url() as url:
        engine = make_engine(url)
        killer = create_engine(url, poolclass=NullPool)
        try:
            migrate.upgrade(engine)
            first, second = engine.connect(), engine.connect()
            pids = [
                c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in (first, second)
            ]
            first.rollback()
            second.close()  # back in the pool, its server process about to end
            with killer.connect() as connection:
                for pid in pids:
                    connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                connection.commit()
            with pytest.raises(DBAPIError) as raised:
                FAILURES_SINCE.run(first, {"p_since": WHEN})
            assert raised.value.connection_invalidated
            first.close()
            with engine.connect() as connection:  # not the dead second one: a new one
                assert FAILURES_SINCE.run(connection, {"p_since": WHEN}).rows == []
        finally:
            engine.dispose()
            killer.dispose()
