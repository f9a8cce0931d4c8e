"""PostgreSQL: the prepared statements of storage/prepared.py sent over libpq, several to a
round trip.

Every statement sent to PostgreSQL costs a round trip: the client's send, wait and read,
and the server backend's wake-up, read and reply, about 55 µs of CPU between the two before
the statement does any work. Sent one by one, a password login's statements took 17 round
trips and a second-factor response's 12 (bench/README.md); here they take 6 and 5. Many of
them have a result nobody waits for: the transaction's
``BEGIN``; writes whose outcome only matters if they fail (a withdrawn pending failure, a
new login attempt or session, the audit records); the ``COMMIT``. Here those are held back
and sent together with the next statement whose result is needed, or with the ``COMMIT``,
in one libpq pipeline (one send, one wait, the results read in order). What a transaction
does, and in which order, is unchanged: the server runs the statements one after another
as before, each with a snapshot of its own (READ COMMITTED), inside the same transaction.

- A statement whose result is used (``Prepared.run``) is sent with whatever is held back
  before it; its result is returned, and an error of any statement of the pipeline is
  raised (the first one: the server skips the rest, and the transaction is aborted).
- A statement whose result is not used (``Prepared.queue``) is held back on the
  connection until the next one is sent, or the transaction commits. An error it causes
  surfaces there, still before the commit: a transaction that failed never commits.
- A write whose result is used later (``Prepared.queue_returning``: the id of a row it
  adds, whether it changed a row) is held back with the writes, in order, or after the
  statements of the round trip that carries it, as a read sent ahead is (below), and its
  outcome kept (``Pending``).
- A read whose result is used later (``Prepared.ahead``) is held back the same way, sent
  *after* the statements of the round trip that carries it (before its ``COMMIT``), and
  its outcome kept (``Pending``): a read that another statement's round trip can carry,
  such as the device a second-factor response answers, read with the admission's lock
  and tally. It reads what it would have read in a round trip of its own after that one
  (a row the carrying statement waited for the lock of, as that lock's holder left it).
  Read before anything carried it, it is sent then.
- ``BEGIN`` (with the connection's isolation level, as psycopg would send it) goes with the
  transaction's first statement; ``COMMIT`` with the last writes (``commit``).
- Anything else sent on the connection (SQLAlchemy's own ``execute``) first sends the
  writes held back (``send_held_before``, which storage/engine.py calls before every such
  statement); what is held to follow a statement stays held, to follow that one. A
  rollback forgets what is held (``forget_held``).

A pipeline waits for the server's answers at most ``ANSWER_TIMEOUT_SECONDS`` for each
statement in it. The server ends any statement, a wait for a row lock included, after its
``statement_timeout`` (15 s, storage/engine.py, counted for each statement of a pipeline),
so an answer later than that is from a database that has stopped working (hung on its
disk, say) while its host still acknowledges our packets, which no TCP timeout notices.
The connection is then closed, as lost, and the request answers 503 instead of waiting
for ever. What the server had of the transaction is then whole or absent, but which is
not known: a pipeline that carried the ``COMMIT`` may have committed (the server runs what
it received, and finds the connection closed only after). The ping of a connection that
has idled in the pool (``ping``) goes the same way, and so does a ``COMMIT`` with nothing
held back, so a login at a quiet moment is bounded too. (A ``ROLLBACK`` is psycopg's own,
bounded the same way by storage/bounded_driver.py.)

psycopg keeps owning the connection: it opened it, and its ``commit``, ``rollback`` and
cursors work as before (they read the transaction's state from libpq, which is the truth).
This module only uses its libpq wrapper (``pgconn``) and its adapters (``Transformer``): the
parameters are dumped and the rows loaded by the same code a psycopg cursor uses. Waiting
for the server is a ``poll`` on the connection's socket, which lets other threads run
(libpq's ``PQgetResult``, as psycopg wraps it, would hold the GIL while it waits).

Statements are prepared on each connection the first time they are sent on it (with the
names ``sl_`` and a digest of their text), in the same pipeline. psycopg prepares none of
its own (storage/engine.py sets its ``prepare_threshold`` to None): it would deallocate all
of a connection's prepared statements, ours too, at a rollback that followed one of its own.
"""

from __future__ import annotations

import hashlib
import math
import re
import select
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import Connection as PsycopgConnection
from psycopg import abc, errors, pq
from psycopg.adapt import PyFormat, Transformer

_SESSION = "securelogin.pipeline"  # the key of a pooled connection's _Session
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_IDLE = pq.TransactionStatus.IDLE
_COMMIT = b"COMMIT"
ANSWER_TIMEOUT_SECONDS = 20.0  # per statement: its timeout (15 s), and a margin
PING_TIMEOUT_SECONDS = 5.0  # a ping waits for no lock: a healthy server answers in milliseconds
_PING = b"SELECT 1"


@dataclass(frozen=True)
class Statement:
    """A statement in libpq's form: ``$1``… placeholders, and the names they stand for."""

    name: bytes
    text: bytes
    order: tuple[str, ...]

    @classmethod
    def of(cls, sql: str) -> Statement:
        """From SQLAlchemy's psycopg form (``%(name)s`` placeholders, ``%%`` for ``%``)."""
        order: list[str] = []

        def placeholder(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "%"
            if name not in order:
                order.append(name)
            return f"${order.index(name) + 1}"

        text = _PLACEHOLDER.sub(placeholder, sql)
        name = "sl_" + hashlib.sha256(text.encode()).hexdigest()[:24]
        return cls(name.encode(), text.encode(), tuple(order))


@dataclass(frozen=True)
class Outcome:
    """One statement's rows (as tuples, the driver's values) and rows affected."""

    rows: list[tuple[Any, ...]]
    rowcount: int


@dataclass
class Pending:
    """The outcome of a statement held back, once a round trip has carried it (None until
    then, and for ever if its transaction was rolled back first).

    ``after``: sent after the statements of the round trip that carries it (a read sent
    ahead, or a write that must follow them); False for a write whose result is read
    later, sent in order with the writes held back."""

    after: bool
    outcome: Outcome | None = None


_Held = tuple[Statement, list[bytes | None], Pending | None]


def _follows(held: _Held) -> bool:
    """Whether a statement held back goes after those of the round trip that carries it."""
    pending = held[2]
    return pending is not None and pending.after


@dataclass
class _Session:
    """What this module keeps for one pooled connection (``pooled.info``), which the pool
    forgets with the connection."""

    transformer: abc.Transformer
    prepared: set[bytes] = field(default_factory=set)
    held: list[_Held] = field(default_factory=list)


def session_of(info: dict[Any, Any], driver: Any) -> _Session:
    session: _Session | None = info.get(_SESSION)
    if session is None:
        session = info[_SESSION] = _Session(Transformer.from_context(driver))
    return session


def hold(
    info: dict[Any, Any],
    driver: Any,
    statement: Statement,
    params: dict[str, Any],
    pending: Pending | None = None,
) -> None:
    """Send ``statement`` with the next one, or with the commit; its outcome is kept in
    ``pending`` when given. Outside a transaction (autocommit) there is nothing to wait
    for: it is sent now."""
    session = session_of(info, driver)
    session.held.append((statement, _dumped(session, statement, params), pending))
    if driver.autocommit:
        send_held(info, driver)


def run(
    info: dict[Any, Any],
    driver: Any,
    statements: Sequence[tuple[Statement, dict[str, Any]]],
) -> list[Outcome]:
    """Send what is held back and ``statements``, in one round trip; their outcomes."""
    session = session_of(info, driver)
    wanted: list[_Held] = [(s, _dumped(session, s, params), None) for s, params in statements]
    return _send(session, driver, wanted) if wanted else []


def send_held(info: dict[Any, Any], driver: Any) -> None:
    """Send what is held back, if anything."""
    session: _Session | None = info.get(_SESSION)
    if session is not None and session.held:
        _send(session, driver, [])


def send_held_before(info: dict[Any, Any], driver: Any) -> None:
    """Before another statement is sent on the connection (SQLAlchemy's own): send the
    writes held back, which must come before it. Those held to follow the next statement
    (reads sent ahead, writes that must follow) stay held, to follow this one: sent now,
    they would run before it, and before a lock it may take."""
    session: _Session | None = info.get(_SESSION)
    if session is None:
        return
    following = [held for held in session.held if _follows(held)]
    if len(following) == len(session.held):
        return
    session.held = [held for held in session.held if not _follows(held)]
    try:
        _send(session, driver, [])
    finally:
        session.held = following + session.held


def commit(info: dict[Any, Any], driver: Any) -> None:
    """Commit, with what is held back in the same round trip; psycopg's own commit when no
    transaction was begun (it sends nothing then)."""
    session: _Session | None = info.get(_SESSION)
    if (session is None or not session.held) and driver.pgconn.transaction_status == _IDLE:
        driver.commit()
        return
    session = session_of(info, driver)
    try:
        _send(session, driver, [], commit=True)
    except errors.Error:
        # As when a COMMIT fails: the transaction has ended. (A held-back statement failed,
        # so the server skipped the COMMIT and kept the transaction open, aborted.)
        if driver.pgconn.status == pq.ConnStatus.OK:
            driver.rollback()
        raise


def ping(driver: Any) -> None:
    """One round trip outside any transaction (``SELECT 1``), answered within
    ``PING_TIMEOUT_SECONDS`` or the connection is closed; raises psycopg's error."""
    pgconn = driver.pgconn
    pgconn.enter_pipeline_mode()
    try:
        pgconn.send_query_params(_PING, None)
        pgconn.pipeline_sync()
        results = _collect(pgconn, 1, PING_TIMEOUT_SECONDS)
    finally:
        _leave_pipeline(pgconn)
    if results[0].status not in _OK:
        raise errors.error_from_result(results[0], encoding=driver.info.encoding)


def forget_held(info: dict[Any, Any]) -> None:
    """The transaction is rolled back: what it held back is never sent."""
    session: _Session | None = info.get(_SESSION)
    if session is not None:
        session.held.clear()


def _dumped(session: _Session, statement: Statement, params: dict[str, Any]) -> list[Any]:
    values = [params[name] for name in statement.order]
    dumped = session.transformer.dump_sequence(values, [PyFormat.TEXT] * len(values))
    return list(dumped)


def _send(
    session: _Session,
    driver: Any,
    wanted: list[_Held],
    *,
    commit: bool = False,
) -> list[Outcome]:
    """One pipeline: BEGIN if no transaction is open, the held writes, ``wanted``, the held
    statements sent after them (reads sent ahead, writes that must follow), and COMMIT if
    asked; the outcomes of ``wanted``, in order (and each held
    statement's kept in its ``Pending``, when it has one). A read sent ahead so runs after
    everything sent before its result is used, as it would have had it been sent then (it
    reads what the statement that carries it waited for, such as a lock)."""
    pgconn = driver.pgconn
    writes = [held for held in session.held if not _follows(held)]
    reads = [held for held in session.held if _follows(held)]
    statements, session.held = [*writes, *wanted, *reads], []
    commands: list[tuple[bytes, Statement | None]] = []  # what was sent, in order
    pgconn.enter_pipeline_mode()
    try:
        if not driver.autocommit and pgconn.transaction_status == _IDLE:
            pgconn.send_query_params(_begin_command(driver), None)
            commands.append((b"BEGIN", None))
        preparing: set[bytes] = set()  # once, if the same statement comes twice
        for statement, params, _ in statements:
            if statement.name not in session.prepared and statement.name not in preparing:
                pgconn.send_prepare(statement.name, statement.text, None)
                commands.append((b"PREPARE", statement))
                preparing.add(statement.name)
            pgconn.send_query_prepared(statement.name, params, None, 0)
            commands.append((b"EXECUTE", statement))
        if commit:
            pgconn.send_query_params(_COMMIT, None)
            commands.append((_COMMIT, None))
        pgconn.pipeline_sync()
        statements_sent = sum(command != b"PREPARE" for command, _ in commands)
        results = _collect(pgconn, len(commands), ANSWER_TIMEOUT_SECONDS * statements_sent)
    finally:
        _leave_pipeline(pgconn)
    outcomes = _outcomes(session, driver, commands, results)
    for (_, _, pending), outcome in zip(statements, outcomes, strict=True):
        if pending is not None:
            pending.outcome = outcome
    return outcomes[len(writes) : len(writes) + len(wanted)]


def _collect(pgconn: pq.abc.PGconn, count: int, seconds: float) -> list[pq.abc.PGresult]:
    """The result of each of ``count`` commands, up to the pipeline's end, waiting for them
    in ``poll`` (which lets other threads run), for ``seconds`` in all at most."""
    deadline = time.monotonic() + seconds
    waiting = select.poll()
    waiting.register(pgconn.socket, select.POLLOUT)

    def wait() -> None:
        left = deadline - time.monotonic()
        if left > 0 and waiting.poll(math.ceil(left * 1000)):
            return
        pgconn.finish()  # in a state nobody knows: closed, so that psycopg sees it lost
        raise errors.OperationalError(f"the database did not answer within {seconds:g} seconds")

    while pgconn.flush():  # the socket's buffer is full: wait until it takes the rest
        wait()
    waiting.modify(pgconn.socket, select.POLLIN)
    results: list[pq.abc.PGresult] = []
    while True:
        while pgconn.is_busy():
            wait()
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            continue  # the end of one command's results
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            if len(results) != count:
                raise errors.OperationalError("the pipeline ended early")
            return results
        results.append(result)


def _leave_pipeline(pgconn: pq.abc.PGconn) -> None:
    """Back to libpq's ordinary mode. A connection that cannot leave it (it broke meanwhile,
    or results were left unread by an error of ours) is closed: psycopg then sees it broken
    and the pool replaces it, instead of it being used again in an unknown state."""
    if pgconn.status == pq.ConnStatus.BAD:
        return
    try:
        pgconn.exit_pipeline_mode()
    except Exception:
        pgconn.finish()
        raise


def _outcomes(
    session: _Session,
    driver: Any,
    commands: list[tuple[bytes, Statement | None]],
    results: list[pq.abc.PGresult],
) -> list[Outcome]:
    """Each statement's outcome; the first error raised (the server skipped what followed
    it, so the transaction is aborted and will be rolled back). Statements prepared here
    stay prepared on the connection whatever follows (a prepared statement outlives a
    rollback)."""
    for (command, statement), result in zip(commands, results, strict=True):
        if command == b"PREPARE" and statement and result.status == pq.ExecStatus.COMMAND_OK:
            session.prepared.add(statement.name)
    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            error = errors.error_from_result(result, encoding=driver.info.encoding)
            if isinstance(error, errors.InvalidSqlStatementName):
                session.prepared.clear()  # deallocated behind our back: prepared again next
            raise error
        if result.status not in _OK:  # PIPELINE_ABORTED only follows an error, raised above
            raise errors.InternalError(f"unexpected result status {result.status!r}")
    return [
        _outcome(session.transformer, result)
        for (command, _), result in zip(commands, results, strict=True)
        if command == b"EXECUTE"
    ]


def _outcome(transformer: abc.Transformer, result: pq.abc.PGresult) -> Outcome:
    rows: list[tuple[Any, ...]] = []
    if result.status == pq.ExecStatus.TUPLES_OK and result.ntuples:
        transformer.set_pgresult(result)
        rows = transformer.load_rows(0, result.ntuples, tuple)
    affected = result.command_tuples
    return Outcome(rows, -1 if affected is None else affected)


def _begin_command(driver: PsycopgConnection[Any]) -> bytes:
    """The BEGIN psycopg would send for ``driver``'s settings (its isolation level and
    access mode, which SQLAlchemy sets for a read-only unit of work)."""
    parts = [b"BEGIN"]
    if driver.isolation_level is not None:
        parts += [b"ISOLATION LEVEL", driver.isolation_level.name.replace("_", " ").encode()]
    if driver.read_only is not None:
        parts.append(b"READ ONLY" if driver.read_only else b"READ WRITE")
    if driver.deferrable is not None:
        parts.append(b"DEFERRABLE" if driver.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)
