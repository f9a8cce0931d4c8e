"""Engines for the two supported databases, configured for exact concurrency.

SQLite (the embedded default): every transaction starts with ``BEGIN IMMEDIATE``, so
transactions that may write are serialised by SQLite's own lock, across threads and
processes alike; WAL lets readers go on meanwhile; a busy timeout makes waiters queue
instead of failing.

PostgreSQL: READ COMMITTED plus explicit row locks (``SELECT ... FOR UPDATE``) in the
repositories; a short connect timeout so that a database that is down is reported
within seconds (503); a statement, lock waits included, ends after 15 s, and so does a
transaction left idle by its client (``POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_MS``), so that
the locks of a frozen or cut-off app server are given back to the others. The service
heals by itself when the database is back: a driver error that means a lost connection
has every older pooled connection replaced at its next checkout (SQLAlchemy does so, and
storage/prepared.py does the same), and a connection that has lain idle in the pool for
more than ``POSTGRES_IDLE_PING_SECONDS`` is pinged before use and replaced if dead (a
database restarted while the service was quiet).
A connection taken straight back into use is not pinged: under load that would be one
round trip more per transaction, for nothing (``pool_pre_ping`` pings every time). The
login's statements go over libpq several to a round trip (storage/pipeline.py): the engine
commits what they held back with its ``COMMIT``, sends it before any other statement, and
forgets it on a rollback. Those round trips wait for an answer 20 s at most for each
statement, and so does every other wait of the driver, a ``ROLLBACK``'s included
(storage/bounded_driver.py): a database that hangs answers 503, not never.

A read-only transaction (``begin_read_only``, for a long read such as ``audit verify``)
reads one snapshot and takes no write lock: on SQLite a deferred ``BEGIN`` (in WAL its
first read fixes the snapshot, and writers go on meanwhile), on PostgreSQL REPEATABLE READ
READ ONLY (one snapshot for all its statements). Every other transaction is as above.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from securelogin.storage import pipeline
from securelogin.storage.bounded_driver import BoundedConnection

SQLITE_BUSY_TIMEOUT_SECONDS = 30
POSTGRES_TCP_USER_TIMEOUT_MS = 5_000
POSTGRES_KEEPALIVE_IDLE_SECONDS = 2
POSTGRES_CONNECT_TIMEOUT_SECONDS = 3
POSTGRES_STATEMENT_TIMEOUT_MS = 15_000
# A transaction of ours whose client falls silent between statements (its process frozen,
# the network between them cut without a word) is ended by the server after this long, and
# its row locks with it: the audit head's lock is taken by every audited transaction, so
# one such transaction would otherwise stop every login until the server noticed the dead
# peer (hours, with the kernel's default keepalives). None of ours waits on its client that
# long: the few hashes inside a transaction (a temporary passcode's check, the rare second
# check in services/login.py) take tens of milliseconds. Proven by
# tests/integration/test_frozen_transaction.py.
POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_MS = 15_000
POSTGRES_IDLE_PING_SECONDS = 2.0  # idle longer than this in the pool: pinged before use

# True only while begin_read_only begins a transaction on SQLite: its BEGIN is deferred.
_DEFERRED_BEGIN: ContextVar[bool] = ContextVar("securelogin_deferred_begin", default=False)


def make_engine(database_url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``database_url`` (``sqlite:///...`` or ``postgresql+psycopg://...``)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url)
    if url.get_backend_name() == "postgresql":
        if url.get_driver_name() != "psycopg":  # storage/pipeline.py and bounded_driver.py
            raise ValueError("PostgreSQL is reached through psycopg 3: postgresql+psycopg://...")
        return _postgres_engine(database_url, pool_size)
    raise ValueError(f"unsupported database: {url.get_backend_name()}")


def _sqlite_engine(database_url: str) -> Engine:
    engine = create_engine(
        database_url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        pool_size=8,
        max_overflow=8,
        pool_timeout=60,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    # Every transaction begins with BEGIN IMMEDIATE, sent by the dialect's own ``do_begin``
    # (a no-op for pysqlite), which SQLAlchemy calls for each transaction and whose driver
    # errors it wraps as it wraps any (a lock not had within the busy timeout is an
    # OperationalError, so 503). It is sent straight on the DBAPI connection: the "begin"
    # event and ``exec_driver_sql`` that SQLAlchemy's documentation shows cost each
    # transaction an execution context and a result, and make every connection of the
    # engine dispatch events (bench/README.md). A read-only transaction (begin_read_only)
    # begins deferred instead.
    engine.dialect.do_begin = _begin_immediate  # type: ignore[method-assign]
    return engine


def _begin_immediate(dbapi_connection: Any) -> None:
    dbapi_connection.execute("BEGIN" if _DEFERRED_BEGIN.get() else "BEGIN IMMEDIATE")


def is_reachable(engine: Engine) -> bool:
    """Whether the database answers a round trip now (``/healthz``). On PostgreSQL the
    round trip is the pipeline's bounded ping, so a database that hangs while its host
    still acknowledges is reported unreachable within seconds, not waited for."""
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                pipeline.ping(connection.connection.dbapi_connection)
            else:
                connection.exec_driver_sql("SELECT 1")
    except Exception:
        return False
    return True


def begin_read_only(connection: Connection) -> RootTransaction:
    """Begin, on a connection just taken from the pool, a transaction that reads one
    consistent snapshot of the database and takes no write lock, however long it reads.

    SQLite: a deferred ``BEGIN``. Its first read fixes the snapshot (WAL, as every file
    database here is), and neither it nor a writer waits for the other; it must not write
    (a deferred transaction that writes after another has committed fails at once instead
    of queueing for the lock). PostgreSQL: REPEATABLE READ READ ONLY, which refuses any
    write; the pool gives the connection back its READ COMMITTED and read-write when it
    is returned.
    """
    if connection.dialect.name == "postgresql":
        connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        return connection.begin()
    token = _DEFERRED_BEGIN.set(True)
    try:
        return connection.begin()
    finally:
        _DEFERRED_BEGIN.reset(token)


def _postgres_engine(database_url: str, pool_size: int) -> Engine:
    url = make_url(database_url)
    given = url.query.get("options", "")
    options = " ".join(
        part
        for part in (
            given if isinstance(given, str) else " ".join(given),
            f"-c statement_timeout={POSTGRES_STATEMENT_TIMEOUT_MS}"
            f" -c idle_in_transaction_session_timeout={POSTGRES_IDLE_IN_TRANSACTION_TIMEOUT_MS}"
            " -c timezone=UTC",
        )
        if part
    )
    engine = create_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=30,
        connect_args={
            "connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
            "options": options,
            "application_name": _one(url.query.get("application_name", "securelogin")),
            # storage/pipeline.py prepares the statements worth preparing; psycopg's own
            # would have it deallocate all of them at the next rollback.
            "prepare_threshold": None,
            # A database that vanishes without closing its connections (a network cut):
            # the kernel gives up on data unacknowledged for 5 s (on a network where an
            # acknowledgement takes milliseconds), and a connection quiet for 2 s, such as
            # one waiting for its answer, is probed, so that a probe unanswered for 5 s ends
            # it too: requests end in 503 within seconds instead of hanging
            # (tests/failures/test_database_silent_cut.py).
            "tcp_user_timeout": POSTGRES_TCP_USER_TIMEOUT_MS,
            "keepalives": 1,
            "keepalives_idle": POSTGRES_KEEPALIVE_IDLE_SECONDS,
            "keepalives_interval": 2,
            "keepalives_count": 3,
        },
    )
    _open_bounded_connections(engine)
    _ping_after_idling(engine, POSTGRES_IDLE_PING_SECONDS)
    _send_what_pipelines_held(engine)
    return engine


def _open_bounded_connections(engine: Engine) -> None:
    """The engine's connections are storage/bounded_driver.py's: psycopg's own, but no
    wait for the server, a ROLLBACK's included, lasts longer than a pipelined statement's."""

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> BoundedConnection:
        return BoundedConnection.connect(*cargs, **cparams)


def _send_what_pipelines_held(engine: Engine) -> None:
    """Statements held back on a connection (storage/pipeline.py) go with its COMMIT, before
    any other statement sent on it, and nowhere if it rolls back. The commit and rollback
    are the dialect's own (SQLAlchemy wraps their driver errors as it wraps any); the
    statement hook runs inside SQLAlchemy's execution, whose errors it wraps too."""
    rollback = engine.dialect.do_rollback

    def do_commit(connection: Any) -> None:  # SQLAlchemy's pooled connection
        pipeline.commit(connection.info, connection.dbapi_connection)

    def do_rollback(connection: Any) -> None:
        try:  # a pooled connection has its info; SQLAlchemy's first connect passes one without
            info = connection.info
        except (AttributeError, NotImplementedError):
            info = None
        if isinstance(info, dict):
            pipeline.forget_held(info)
        rollback(connection)

    engine.dialect.do_commit = do_commit  # type: ignore[method-assign,assignment]
    engine.dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]

    @event.listens_for(engine, "before_cursor_execute")
    def _send_held_first(connection: Connection, *_: Any) -> None:
        pooled = connection.connection
        pipeline.send_held_before(pooled.info, pooled.dbapi_connection)


def _ping_after_idling(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection before use if it has been idle for ``idle_seconds``; a dead
    one is replaced (the pool retries the checkout with a new connection)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            pipeline.ping(dbapi_connection)  # bounded: a hung database is a dead connection
        except Exception as error:
            raise DisconnectionError("a pooled connection did not answer") from error


def _one(value: str | tuple[str, ...]) -> str:
    """A URL query value given once (the last one when given several times)."""
    return value if isinstance(value, str) else value[-1]
