"""storage/pipeline.py: on PostgreSQL, statements held back and sent together change how
many round trips a transaction takes, never what it does.

Proven against a real PostgreSQL (and, where the property is the database's either way, on
SQLite too): a held-back write is seen by the statement after it, by SQLAlchemy's own
statements and by the commit; it is never sent if the transaction rolls back; its error
surfaces before anything commits; statements sent together run one after another, each
seeing what committed before it ran (a tally sent with the lock it waits behind counts what
the lock's holder wrote); the transaction's BEGIN is the connection's own (a read-only
unit of work stays one); a statement deallocated behind the module's back is prepared again;
the round trips are the ones counted in bench/README.md; an admission costs the same
statements and round trips whether or not its name was ever tried; and a read sent ahead
goes with the next statement, keeps its result, raises its error there, and is never
sent by a transaction that rolled back first; a write queued with its result read later
goes before the next statement, as queued, and keeps its result, or, held to follow the
next statement, runs after the lock that statement waits for and is never sent alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Integer, String, bindparam, cast, func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError

from securelogin.domain.lockout import LockoutPolicy
from securelogin.services.ports import Admitted
from securelogin.storage import migrate, pipeline, prepared
from securelogin.storage.engine import begin_read_only, make_engine
from securelogin.storage.lockout import SqlLockoutRepository
from securelogin.storage.prepared import Prepared, run_together
from securelogin.storage.tables import lockout_failures, lockout_subjects
from tests.databases import postgres_schema_url, require_postgres, sqlite_url

WHEN = datetime(2026, 3, 2, 9, 30, 15, tzinfo=UTC)

ADD_SUBJECT = Prepared(lockout_subjects.insert(), columns=("subject", "locked_until"))
ADD_FAILURE = Prepared(
    lockout_failures.insert().values(subject=bindparam("p_subject"), failed_at=bindparam("p_at"))
)
ADD_FAILURE_RETURNING = Prepared(
    lockout_failures.insert()
    .values(subject=bindparam("p_subject"), failed_at=bindparam("p_at"))
    .returning(lockout_failures.c.failure_id)
)
LOCK_SUBJECT = Prepared(
    select(lockout_subjects.c.subject)
    .where(lockout_subjects.c.subject == bindparam("p_subject"))
    .with_for_update()
)
TOUCH_SUBJECT = Prepared(
    lockout_subjects.update()
    .where(lockout_subjects.c.subject == bindparam("p_subject"))
    .values(locked_until=None)
)
COUNT_FAILURES = Prepared(
    select(func.count())
    .select_from(lockout_failures)
    .where(lockout_failures.c.subject == bindparam("p_subject"))
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)  # type: ignore[arg-type]
        made = make_engine(url)
        migrate.upgrade(made)
        yield made
        made.dispose()
        return
    with postgres_schema_url() as url:
        made = make_engine(url)
        migrate.upgrade(made)
        yield made
        made.dispose()


@pytest.fixture
def postgres() -> Iterator[Engine]:
    require_postgres()
    with postgres_schema_url() as url:
        made = make_engine(url)
        migrate.upgrade(made)
        yield made
        made.dispose()


AS_NUMBER = Prepared(select(cast(bindparam("p_text", type_=String), Integer).label("number")))


def failures(engine: Engine, subject: str = "abcde123") -> int:
    with engine.connect() as connection:
        return int(COUNT_FAILURES.run(connection, {"p_subject": subject}).scalar())


def test_a_held_back_write_is_seen_by_the_next_statement_and_committed(engine: Engine) -> None:
    with engine.begin() as connection:
        ADD_SUBJECT.queue(connection, {"subject": "abcde123", "locked_until": None})
        ADD_FAILURE.queue(connection, {"p_subject": "abcde123", "p_at": WHEN})
        assert COUNT_FAILURES.run(connection, {"p_subject": "abcde123"}).scalar() == 1
        ADD_FAILURE.queue(connection, {"p_subject": "abcde123", "p_at": WHEN})
    assert failures(engine) == 2  # the last one went with the COMMIT


def test_sqlalchemys_own_statements_see_what_was_held_back(engine: Engine) -> None:
    with engine.begin() as connection:
        ADD_SUBJECT.queue(connection, {"subject": "abcde123", "locked_until": None})
        seen = connection.execute(select(func.count()).select_from(lockout_subjects)).scalar()
        assert seen == 1


def test_a_rolled_back_transaction_never_sends_what_it_held_back(engine: Engine) -> None:
    with engine.connect() as connection:  # one pooled connection throughout
        with connection.begin():
            ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        transaction = connection.begin()
        ADD_FAILURE.queue(connection, {"p_subject": "abcde123", "p_at": WHEN})
        transaction.rollback()
        with connection.begin():  # only this one is sent
            ADD_FAILURE.queue(connection, {"p_subject": "abcde123", "p_at": WHEN})
    assert failures(engine) == 1


def test_an_error_of_a_held_back_write_is_raised_and_nothing_commits(engine: Engine) -> None:
    with engine.connect() as connection:
        with connection.begin():
            ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        with pytest.raises(IntegrityError) as raised, connection.begin():
            ADD_FAILURE.queue(connection, {"p_subject": "abcde123", "p_at": WHEN})
            ADD_SUBJECT.queue(connection, {"subject": "abcde123", "locked_until": None})
        assert raised.value.params is None  # never the parameters
        assert not raised.value.connection_invalidated
        with connection.begin():  # the same connection works on, and nothing was written
            assert COUNT_FAILURES.run(connection, {"p_subject": "abcde123"}).scalar() == 0
    assert failures(engine) == 0


def test_the_same_statement_twice_in_one_round_trip_is_prepared_once(engine: Engine) -> None:
    """On a connection that never sent it, a statement sent twice in one pipeline (two held
    writes alike, three audit batches of 8 records) is prepared once, not twice (the
    second PREPARE would fail: the name exists)."""
    with engine.begin() as connection:
        ADD_SUBJECT.queue(connection, {"subject": "abcde123", "locked_until": None})
        ADD_FAILURE.queue(connection, {"p_subject": "abcde123", "p_at": WHEN})
        ADD_FAILURE.queue(connection, {"p_subject": "abcde123", "p_at": WHEN + timedelta(1)})
    assert failures(engine) == 2


def test_statements_run_together_in_order(engine: Engine) -> None:
    with engine.begin() as connection:
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        locked, counted = run_together(
            connection,
            (LOCK_SUBJECT, {"p_subject": "abcde123"}),
            (COUNT_FAILURES, {"p_subject": "abcde123"}),
        )
        assert locked.scalar() == "abcde123" and counted.scalar() == 0


@pytest.mark.postgres
def test_a_tally_sent_with_its_lock_counts_what_the_locks_holder_committed(
    postgres: Engine,
) -> None:
    """The lockout's admission (storage/lockout.py) sends the subject's lock and its tally
    in one round trip: the tally must run after the lock is had, with a snapshot of its
    own, so that it counts the failure the lock's previous holder settled."""
    with postgres.begin() as connection:
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
    holder = postgres.connect()
    holding = holder.begin()
    LOCK_SUBJECT.run(holder, {"p_subject": "abcde123"})
    ADD_FAILURE.run(holder, {"p_subject": "abcde123", "p_at": WHEN})
    seen: list[int] = []

    def admit() -> None:
        with postgres.begin() as connection:
            _, counted = run_together(
                connection,
                (LOCK_SUBJECT, {"p_subject": "abcde123"}),
                (COUNT_FAILURES, {"p_subject": "abcde123"}),
            )
            seen.append(int(counted.scalar()))

    waiter = threading.Thread(target=admit)
    waiter.start()
    time.sleep(0.3)  # the waiter is blocked on the lock (its tally not yet run)
    assert not seen
    holding.commit()
    holder.close()
    waiter.join(10)
    assert seen == [1]


@pytest.mark.postgres
def test_begin_is_the_connections_own_so_a_read_only_unit_of_work_stays_read_only(
    postgres: Engine,
) -> None:
    with postgres.connect() as connection:
        reading = begin_read_only(connection)
        COUNT_FAILURES.run(connection, {"p_subject": "abcde123"})  # sends the BEGIN
        level = connection.execute(text("SHOW transaction_isolation")).scalar()
        read_only = connection.execute(text("SHOW transaction_read_only")).scalar()
        assert (level, read_only) == ("repeatable read", "on")
        reading.rollback()


@pytest.mark.postgres
def test_a_statement_deallocated_behind_its_back_is_prepared_again(postgres: Engine) -> None:
    with postgres.connect() as connection:
        with connection.begin():
            COUNT_FAILURES.run(connection, {"p_subject": "abcde123"})
        with connection.begin():
            connection.execute(text("DEALLOCATE ALL"))
        with pytest.raises(ProgrammingError), connection.begin():  # the one transaction fails
            COUNT_FAILURES.run(connection, {"p_subject": "abcde123"})
        with connection.begin():
            assert COUNT_FAILURES.run(connection, {"p_subject": "abcde123"}).scalar() == 0


@pytest.mark.postgres
def test_held_back_statements_and_the_commit_share_one_round_trip(
    postgres: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = counting_round_trips(monkeypatch)
    with postgres.begin() as connection:
        ADD_SUBJECT.queue(connection, {"subject": "abcde123", "locked_until": None})
        ADD_FAILURE.queue(connection, {"p_subject": "abcde123", "p_at": WHEN})
        COUNT_FAILURES.run(connection, {"p_subject": "abcde123"})
        ADD_FAILURE.queue(connection, {"p_subject": "abcde123", "p_at": WHEN + timedelta(1)})
    # BEGIN and 3 statements, each prepared first; then the last one with the COMMIT
    assert sent == [7, 2]
    assert failures(postgres) == 2


def test_a_name_never_tried_costs_what_a_name_tried_before_costs(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R2.3: an admission sends the same statements (and on PostgreSQL the same round trips)
    whether or not the name was ever tried, as a real user's name usually has been: a
    statement more for a name never seen would be a difference in timing."""
    sent: list[str] = []
    round_trips: list[int] = []
    log, collect = prepared._log, pipeline._collect

    def logging(connection: object, compiled: Any, params: object, how: str) -> None:
        sent.append(compiled.sql)
        log(connection, compiled, params, how)  # type: ignore[arg-type]

    def counting(pgconn: object, count: int, seconds: float) -> object:
        round_trips.append(count)
        return collect(pgconn, count, seconds)  # type: ignore[arg-type]

    monkeypatch.setattr(prepared, "_log", logging)
    monkeypatch.setattr(pipeline, "_collect", counting)

    def admission(connection: Connection, subject: str) -> tuple[list[str], list[int]]:
        sent.clear()
        round_trips.clear()
        with connection.begin():
            admitted = SqlLockoutRepository(connection).admit(subject, WHEN, LockoutPolicy())
        assert isinstance(admitted, Admitted)
        return list(sent), list(round_trips)

    with engine.connect() as connection:
        admission(connection, "warmup1")  # every statement prepared on this connection
        admission(connection, "tried123")
        tried_before = admission(connection, "tried123")
        never_tried = admission(connection, "never123")
    assert never_tried == tried_before
    assert len(tried_before[0]) == 4  # the row made if missing, its lock, the tally, the pending


def counting_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The commands of each round trip sent from now on (PostgreSQL's; SQLite has none)."""
    sent: list[int] = []
    collect = pipeline._collect

    def counting(pgconn: object, count: int, seconds: float) -> object:
        sent.append(count)
        return collect(pgconn, count, seconds)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_collect", counting)
    return sent


def test_a_read_sent_ahead_goes_with_the_next_statement_and_keeps_its_result(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as connection:  # every statement prepared on this connection
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        COUNT_FAILURES.run(connection, {"p_subject": "abcde123"})
        ADD_FAILURE.run(connection, {"p_subject": "abcde123", "p_at": WHEN})
    round_trips = counting_round_trips(monkeypatch)
    with engine.begin() as connection:
        ahead = COUNT_FAILURES.ahead(connection, {"p_subject": "abcde123"})
        ADD_FAILURE.run(connection, {"p_subject": "abcde123", "p_at": WHEN})  # carries it
        assert ahead.result().scalar() == 2  # run after the statement that carried it
        ADD_FAILURE.run(connection, {"p_subject": "abcde123", "p_at": WHEN})
        assert ahead.result().scalar() == 2  # read again: kept, not sent again
        assert COUNT_FAILURES.run(connection, {"p_subject": "abcde123"}).scalar() == 3
    if engine.dialect.name == "postgresql":
        # BEGIN, the insert and the read ahead; the next insert; the count; the COMMIT
        assert round_trips == [3, 1, 1, 1]


def test_a_write_queued_with_its_result_goes_before_the_next_statement_and_keeps_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as connection:  # every statement prepared on this connection
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        COUNT_FAILURES.run(connection, {"p_subject": "abcde123"})
        ADD_FAILURE_RETURNING.run(connection, {"p_subject": "abcde123", "p_at": WHEN})
    round_trips = counting_round_trips(monkeypatch)
    with engine.begin() as connection:
        added = ADD_FAILURE_RETURNING.queue_returning(
            connection, {"p_subject": "abcde123", "p_at": WHEN}
        )
        assert COUNT_FAILURES.run(connection, {"p_subject": "abcde123"}).scalar() == 2  # seen
        added_id = added.result().scalar()
        assert added.result().scalar() == added_id  # read again: kept, not sent again
    with engine.connect() as connection:
        newest = connection.execute(select(func.max(lockout_failures.c.failure_id))).scalar()
    assert added_id == newest
    if engine.dialect.name == "postgresql":
        # BEGIN, the insert and the count (the insert first, as queued); the COMMIT
        assert round_trips == [3, 1]


def test_a_write_queued_with_its_result_and_read_before_any_statement_is_sent_then(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as connection:  # every statement prepared on this connection
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        ADD_FAILURE_RETURNING.run(connection, {"p_subject": "abcde123", "p_at": WHEN})
        COUNT_FAILURES.run(connection, {"p_subject": "abcde123"})
    round_trips = counting_round_trips(monkeypatch)
    with engine.begin() as connection:
        added = ADD_FAILURE_RETURNING.queue_returning(
            connection, {"p_subject": "abcde123", "p_at": WHEN}
        )
        assert isinstance(added.result().scalar(), int)
        assert COUNT_FAILURES.run(connection, {"p_subject": "abcde123"}).scalar() == 2
    if engine.dialect.name == "postgresql":
        assert round_trips == [2, 1, 1]  # BEGIN and the insert; the count; the COMMIT


def test_a_write_queued_with_its_result_by_a_transaction_that_rolled_back_is_not_kept(
    engine: Engine,
) -> None:
    with engine.begin() as connection:
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
    with engine.connect() as connection:
        transaction = connection.begin()
        added = ADD_FAILURE_RETURNING.queue_returning(
            connection, {"p_subject": "abcde123", "p_at": WHEN}
        )
        transaction.rollback()
        if engine.dialect.name == "postgresql":  # never sent
            with pytest.raises(RuntimeError, match="never sent"):
                added.result()
        with connection.begin():  # and nothing of it was written
            assert COUNT_FAILURES.run(connection, {"p_subject": "abcde123"}).scalar() == 0


@pytest.mark.postgres
def test_a_write_held_to_follow_the_next_statement_runs_after_the_lock_it_waits_for(
    postgres: Engine,
) -> None:
    """``queue_returning(after=True)``: sent with the next statement and after it, so after
    a lock that statement waits for (as the take of a login attempt follows the subject's
    lock). While it waits, the row the write will change is still free."""
    with postgres.begin() as connection:
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        ADD_SUBJECT.run(connection, {"subject": "other123", "locked_until": None})
    changed: list[int] = []

    def waiting() -> None:
        with postgres.begin() as connection:
            touched = TOUCH_SUBJECT.queue_returning(
                connection, {"p_subject": "other123"}, after=True
            )
            LOCK_SUBJECT.run(connection, {"p_subject": "abcde123"})  # waits for the holder
            changed.append(touched.result().rowcount)

    with postgres.connect() as holder:
        holding = holder.begin()
        LOCK_SUBJECT.run(holder, {"p_subject": "abcde123"})
        waiter = threading.Thread(target=waiting)
        waiter.start()
        wait_for_a_lock_wait(postgres)
        free = "SELECT 1 FROM lockout_subjects WHERE subject = 'other123' FOR UPDATE NOWAIT"
        assert holder.execute(text(free)).scalar_one() == 1  # not yet changed by the waiter
        holding.commit()
    waiter.join(30)
    assert changed == [1]


@pytest.mark.postgres
def test_a_write_held_to_follow_the_next_statement_is_never_sent_alone(postgres: Engine) -> None:
    with postgres.begin() as connection:
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        touched = TOUCH_SUBJECT.queue_returning(connection, {"p_subject": "abcde123"}, after=True)
        with pytest.raises(RuntimeError, match="before a statement carried it"):
            touched.result()  # alone, it would run before the statement it must follow
        COUNT_FAILURES.run(connection, {"p_subject": "abcde123"})  # carries it
        assert touched.result().rowcount == 1


def wait_for_a_lock_wait(engine: Engine, mentioning: str = "lockout_subjects") -> None:
    """Until a backend waits for a lock in a statement that mentions ``mentioning`` (by
    default, for a row of lockout_subjects)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE :pattern"
    ).bindparams(pattern=f"%{mentioning}%")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.execute(query).scalar_one():
                return
        time.sleep(0.02)
    raise AssertionError("nothing waited for the lock")


def test_a_read_sent_ahead_and_read_before_any_statement_is_sent_then(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with engine.begin() as connection:
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        COUNT_FAILURES.run(connection, {"p_subject": "abcde123"})
    round_trips = counting_round_trips(monkeypatch)
    with engine.begin() as connection:
        ahead = COUNT_FAILURES.ahead(connection, {"p_subject": "abcde123"})
        assert ahead.result().scalar() == 0
    if engine.dialect.name == "postgresql":
        assert round_trips == [2, 1]  # BEGIN and the read; the COMMIT


@pytest.mark.postgres
def test_a_read_sent_ahead_follows_a_statement_of_sqlalchemys_own_too(
    postgres: Engine,
) -> None:
    """A statement sent through SQLAlchemy first sends the writes held back, but what is
    held to follow the next statement stays held and follows it: the read sees what that
    statement wrote (or waited for), as it would after a prepared one."""
    with postgres.begin() as connection:
        ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        ADD_FAILURE.queue(connection, {"p_subject": "abcde123", "p_at": WHEN})
        ahead = COUNT_FAILURES.ahead(connection, {"p_subject": "abcde123"})
        connection.execute(  # SQLAlchemy's own: the queued insert goes first, then this
            lockout_failures.insert().values(subject="abcde123", failed_at=WHEN)
        )
        assert ahead.result().scalar() == 2  # after both inserts


@pytest.mark.postgres
def test_an_error_of_a_read_sent_ahead_is_raised_with_the_next_statement(
    postgres: Engine,
) -> None:
    with postgres.connect() as connection:
        with connection.begin():
            ADD_SUBJECT.run(connection, {"subject": "abcde123", "locked_until": None})
        with pytest.raises(DBAPIError) as raised, connection.begin():
            ahead = AS_NUMBER.ahead(connection, {"p_text": "not a number"})
            ADD_FAILURE.run(connection, {"p_subject": "abcde123", "p_at": WHEN})  # raises
            ahead.result()
        assert "invalid input syntax" in str(raised.value.orig)
        assert raised.value.params is None  # never the parameters
        assert not raised.value.connection_invalidated
    assert failures(postgres) == 0  # nothing of that transaction committed


def test_a_read_sent_ahead_by_a_transaction_that_rolled_back_is_never_sent(
    engine: Engine,
) -> None:
    with engine.connect() as connection:
        transaction = connection.begin()
        ahead = COUNT_FAILURES.ahead(connection, {"p_subject": "abcde123"})
        transaction.rollback()
        if engine.dialect.name == "postgresql":
            with pytest.raises(RuntimeError, match="never sent"):
                ahead.result()
        else:  # SQLite ran it at once
            assert ahead.result().scalar() == 0
        with connection.begin():  # and the connection goes on with nothing of it left
            assert COUNT_FAILURES.run(connection, {"p_subject": "abcde123"}).scalar() == 0
