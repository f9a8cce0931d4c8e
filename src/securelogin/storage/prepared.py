"""The statements on the path of every login, compiled once and run on the driver directly.

SQLAlchemy Core builds and compiles these statements (tables.py is their one description),
and the unit of work's ``Connection`` owns the transaction and the pool as everywhere. What
this module leaves out is SQLAlchemy's per-execution machinery: an execution context and a
result object per statement, which cost about 30 µs on SQLite (where the statement itself
costs 2) and 50 µs on PostgreSQL (where the driver's own round trip costs 55), on each of the
twenty-odd statements of a login (bench/README.md). A ``Prepared`` statement is compiled
once per dialect; each run binds its parameters through the very type processors SQLAlchemy
would use (so a time is stored exactly as any other statement stores it), executes on the
connection's DBAPI cursor (SQLite) or through storage/pipeline.py (PostgreSQL: libpq, several
statements to a round trip), and converts result columns the same way.

A statement whose result the caller reads is ``run``; one whose result nobody reads (a
write whose only possible news is an error) may be ``queue``d instead: on PostgreSQL it is
sent with the next statement or with the commit, in the same round trip (an error it
causes is raised there, before the transaction can commit); on SQLite, where a statement
costs no round trip, it runs at once; a write whose result is read only later (the id an
``INSERT … RETURNING`` gives a new row) may be held back the same way, its result kept
(``queue_returning``). ``run_together`` runs several statements whose
results are all read, in one round trip on PostgreSQL. A read whose result is needed only
after the next statement may be sent ``ahead``: on PostgreSQL held back and sent after the
statements of the next round trip, its result kept (``Ahead.result``); on SQLite run when
its result is read.

The SQL log is SQLAlchemy's too: with ``sqlalchemy.engine`` logging at INFO (``echo``), each
statement and its parameters are logged as SQLAlchemy logs its own, so a prepared statement
is never invisible to whoever reads the SQL a service sends (tests/integration/
test_secrets_at_rest.py reads it to prove that no secret is sent in the clear).

Errors are SQLAlchemy's too: a driver error becomes the ``sqlalchemy.exc.DBAPIError`` that
``Connection.execute`` would raise, and a lost connection is handled as SQLAlchemy handles
one: the connection is invalidated and so is every pooled connection made before it (a
database that went away took them all), so the unit of work answers 503 and the pool
heals (storage/engine.py). Parameters are never part of an error (``hide_parameters``),
and the SQL log leaves them out when the engine hides them.
"""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select

from securelogin.storage import pipeline

_sql_log = logging.getLogger("sqlalchemy.engine.Engine")  # where SQLAlchemy logs its SQL
_CURSOR = "securelogin.prepared.cursor"  # the key of a pooled connection's cursor


@dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # parameter names in order, for positional paramstyles
    defaults: Mapping[str, Any]  # values the statement itself binds (``.values(x=None)``)
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameters that need processing
    row: Any  # the namedtuple class of a result row, or None
    columns: tuple[tuple[int, Callable[[Any], Any]], ...]  # result columns to convert
    wire: pipeline.Statement | None  # on PostgreSQL, the statement as libpq takes it


@dataclass(frozen=True)
class Result:
    rows: list[Any]
    rowcount: int

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def one(self) -> Any:
        if len(self.rows) != 1:
            raise LookupError(f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class Prepared:
    """One Core statement, compiled once per dialect, run straight on the DBAPI cursor."""

    def __init__(self, statement: Executable, *, columns: Sequence[str] = ()) -> None:
        """``columns``: for an INSERT without ``values``, the columns each run provides."""
        self.statement = statement
        self._columns = list(columns) or None
        self._compiled: dict[str, _Compiled] = {}

    def run(self, connection: Connection, params: Mapping[str, Any] | None = None) -> Result:
        """Run it now; its rows and rowcount."""
        return run_together(connection, (self, params))[0]

    def queue(self, connection: Connection, params: Mapping[str, Any] | None = None) -> None:
        """Run it, its result unread: on PostgreSQL sent with the connection's next
        statement or its commit (an error is raised there); on SQLite now."""
        self._hold(connection, params, None)

    def queue_returning(
        self,
        connection: Connection,
        params: Mapping[str, Any] | None = None,
        *,
        after: bool = False,
    ) -> Ahead:
        """``queue`` a write whose result is used later (its rowcount, what its
        ``RETURNING`` returns): on PostgreSQL held back and sent with the connection's next
        statement or its commit, in order with the other writes held back, or with
        ``after`` after the statements of that round trip, as a read sent ahead is (so a
        write that must follow a lock the next statement takes does); its result kept. On
        SQLite, whose transactions are exclusive, run now. Its result read before anything
        carried it is sent then, unless ``after``: that is refused (RuntimeError), since
        sent alone it would run before what it must follow."""
        compiled = self._for(connection.dialect)
        if compiled.wire is None:
            return Ahead(
                connection,
                self,
                params,
                None,
                _execute(connection, compiled, _bound(compiled, params or {})),
            )
        pending = pipeline.Pending(after=after)
        self._hold(connection, params, pending)
        return Ahead(connection, self, params, pending, carried_only=after)

    def ahead(self, connection: Connection, params: Mapping[str, Any] | None = None) -> Ahead:
        """Run a read whose result is used later: on PostgreSQL after the statements of
        the connection's next round trip, in it (an error is raised there), or when its
        result is read first; on SQLite, where a statement costs no round trip, when its
        result is read. So it never reads earlier than the next statement would: what a
        statement sent before it waited for (a lock) or wrote is seen."""
        compiled = self._for(connection.dialect)
        if compiled.wire is None:
            return Ahead(connection, self, params, None)
        pending = pipeline.Pending(after=True)
        self._hold(connection, params, pending)
        return Ahead(connection, self, params, pending)

    def _hold(
        self,
        connection: Connection,
        params: Mapping[str, Any] | None,
        pending: pipeline.Pending | None,
    ) -> None:
        """Held back on PostgreSQL; run now on SQLite."""
        compiled = self._for(connection.dialect)
        bound = _bound(compiled, params or {})
        if compiled.wire is None:
            _execute(connection, compiled, bound)
            return
        if not connection.in_transaction():  # nothing would ever commit it
            raise RuntimeError("a statement is held back only inside a transaction")
        _log(connection, compiled, bound, "prepared, held back")
        pooled = connection.connection
        try:
            pipeline.hold(pooled.info, _driver(pooled), compiled.wire, bound, pending)
        except connection.dialect.loaded_dbapi.Error as error:
            raise _translated(connection, error, compiled.sql, None) from error

    def _for(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _compile(self.statement, dialect, self._columns)
        return found


class Ahead:
    """The result of a read sent ahead (``Prepared.ahead``), or of a write queued with its
    result used later (``Prepared.queue_returning``)."""

    def __init__(
        self,
        connection: Connection,
        prepared: Prepared,
        params: Mapping[str, Any] | None,
        pending: pipeline.Pending | None,
        result: Result | None = None,
        *,
        carried_only: bool = False,
    ) -> None:
        self._connection = connection
        self._prepared = prepared
        self._params = params
        self._pending = pending  # None on SQLite: run when read (a read), or run (a write)
        self._result = result
        self._carried_only = carried_only  # a write that must follow the next statement

    def result(self) -> Result:
        """Its rows and rowcount; if no round trip has carried it yet, one does now."""
        if self._result is None:
            self._result = self._read()
        return self._result

    def _read(self) -> Result:
        connection, pending = self._connection, self._pending
        if pending is None:
            return self._prepared.run(connection, self._params)
        compiled = self._prepared._for(connection.dialect)
        if pending.outcome is None and self._carried_only:  # alone, it would come first
            raise RuntimeError(
                "a write held back to follow the next statement was read before a statement "
                "carried it (or its transaction ended first)"
            )
        if pending.outcome is None and connection.in_transaction():
            pooled = connection.connection
            try:
                pipeline.send_held(pooled.info, _driver(pooled))
            except connection.dialect.loaded_dbapi.Error as error:
                raise _translated(connection, error, compiled.sql, None) from error
        if pending.outcome is None:  # rolled back, or failed, before anything carried it
            raise RuntimeError(
                "a statement held back was never sent: its transaction ended or failed first"
            )
        return Result(_rows(compiled, pending.outcome.rows), pending.outcome.rowcount)


def run_together(
    connection: Connection, *statements: tuple[Prepared, Mapping[str, Any] | None]
) -> list[Result]:
    """Run ``statements`` in order, in one round trip on PostgreSQL (the server still runs
    them one after another, each seeing what the ones before it did); their results."""
    runs = []
    for prepared, params in statements:
        compiled = prepared._for(connection.dialect)
        runs.append((compiled, _bound(compiled, params or {})))
    wires = [(compiled.wire, bound) for compiled, bound in runs if compiled.wire is not None]
    if len(wires) < len(runs):
        return [_execute(connection, compiled, bound) for compiled, bound in runs]
    for compiled, bound in runs:
        _log(connection, compiled, bound, "prepared")
    pooled = connection.connection
    try:
        outcomes = pipeline.run(pooled.info, _driver(pooled), wires)
    except connection.dialect.loaded_dbapi.Error as error:
        sql = "; ".join(compiled.sql for compiled, _ in runs)
        raise _translated(connection, error, sql, None) from error
    return [
        Result(_rows(compiled, outcome.rows), outcome.rowcount)
        for (compiled, _), outcome in zip(runs, outcomes, strict=True)
    ]


def _driver(pooled: Any) -> Any:
    driver = pooled.dbapi_connection
    if driver is None:
        raise RuntimeError("the connection is closed")
    return driver


def _compile(statement: Executable, dialect: Dialect, keys: list[str] | None) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=keys)  # type: ignore[attr-defined]
    if not isinstance(compiled, SQLCompiler):
        raise TypeError("only SQL statements can be prepared")
    binds: list[tuple[str, Callable[[Any], Any]]] = []
    for name, bind in compiled.binds.items():
        if bind.expanding:
            raise TypeError(f"{name}: expanding (IN) parameters cannot be prepared")
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            binds.append((name, processor))
    names, types = _result_columns(statement)
    columns: list[tuple[int, Callable[[Any], Any]]] = []
    for index, type_ in enumerate(types):
        processor = type_.dialect_impl(dialect).result_processor(dialect, None)
        if processor is not None:
            columns.append((index, processor))
    positional = dialect.paramstyle in ("qmark", "numeric", "format")
    return _Compiled(
        sql=compiled.string,
        order=tuple(compiled.positiontup or ()) if positional else None,
        defaults={
            name: value
            for name, value in compiled.construct_params(_check=False).items()
            if not compiled.binds[name].required
        },
        binds=tuple(binds),
        row=_row_class(names),
        columns=tuple(columns),
        wire=pipeline.Statement.of(compiled.string) if dialect.name == "postgresql" else None,
    )


def _result_columns(statement: Executable) -> tuple[list[str | None], list[Any]]:
    if isinstance(statement, Select):
        columns = list(statement.selected_columns)
        return [None if c.key is None else str(c.key) for c in columns], [c.type for c in columns]
    if isinstance(statement, UpdateBase):
        described = statement.returning_column_descriptions
        return [d["name"] for d in described], [d["type"] for d in described]
    return [], []


def _row_class(names: list[str | None]) -> Any:
    """The row's namedtuple: a column is read by its name, an unnamed one (``count(*)``)
    by its place. Two columns of one name are refused (here, when the statement is first
    run) rather than one of them renamed into a field nobody reads."""
    if not names:
        return None
    named = [name for name in names if name is not None]
    if len(set(named)) != len(named):
        raise ValueError(f"columns of one name in a prepared statement: {sorted(named)}")
    return namedtuple("Row", [name or "_" for name in names], rename=True)


def _bound(compiled: _Compiled, params: Mapping[str, Any]) -> Any:
    values = {**compiled.defaults, **params}
    for name, processor in compiled.binds:
        if name in values:
            values[name] = processor(values[name])
    if compiled.order is not None:
        return tuple(values[name] for name in compiled.order)
    return values


def _log(connection: Connection, compiled: _Compiled, params: Any, how: str) -> None:
    if _sql_log.isEnabledFor(logging.INFO):
        _sql_log.info("%s", compiled.sql)
        if connection.engine.hide_parameters:
            _sql_log.info("[%s] [SQL parameters hidden due to hide_parameters=True]", how)
        else:
            _sql_log.info("[%s] %r", how, params)


def _execute(connection: Connection, compiled: _Compiled, params: Any) -> Result:
    """SQLite: on the connection's own DBAPI cursor."""
    _log(connection, compiled, params, "prepared")
    cursor = _cursor(connection)
    try:
        cursor.execute(compiled.sql, params)
        raw = list(cursor.fetchall()) if compiled.row is not None else []
        rowcount = cursor.rowcount
    except connection.dialect.loaded_dbapi.Error as error:
        raise _translated(connection, error, compiled.sql, cursor) from error
    return Result(_rows(compiled, raw), rowcount)


def _cursor(connection: Connection) -> Any:
    """The DBAPI connection's cursor for prepared statements: made once per DBAPI connection
    (kept in the pool entry's ``info``, which the pool clears when it replaces the
    connection); a connection is used by one thread at a time."""
    pooled = connection.connection
    cursor = pooled.info.get(_CURSOR)
    if cursor is None:
        dbapi_connection = pooled.dbapi_connection
        if dbapi_connection is None:
            raise RuntimeError("the connection is closed")
        cursor = pooled.info[_CURSOR] = dbapi_connection.cursor()
    return cursor


def _rows(compiled: _Compiled, raw: list[Any]) -> list[Any]:
    if compiled.row is None:
        return raw
    if not compiled.columns:
        return [compiled.row._make(values) for values in raw]
    rows = []
    for values in raw:
        converted = list(values)
        for index, processor in compiled.columns:
            converted[index] = processor(converted[index])
        rows.append(compiled.row._make(converted))
    return rows


def _translated(connection: Connection, error: Exception, sql: str, cursor: Any) -> BaseException:
    """The error ``Connection.execute`` would raise. A lost connection is handled as
    ``Connection.execute`` handles one: every pooled connection older than it is marked for
    replacement at its next checkout (the pool's ``_invalidate``, which is what SQLAlchemy
    itself calls; tests/integration/test_prepared_statements.py proves the effect), and this
    one is invalidated."""
    dialect = connection.dialect
    pooled = connection.connection
    lost = bool(dialect.is_disconnect(error, pooled.dbapi_connection, cursor))  # type: ignore[arg-type]
    if lost:
        connection.engine.pool._invalidate(pooled, error, _checkin=False)
        connection.invalidate(error)
    return DBAPIError.instance(
        sql,
        None,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=lost,
        dialect=dialect,
    )
