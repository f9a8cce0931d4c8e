"""R9 in SQL: append under a lock on the head row, so the chain has one order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, String, bindparam, select, type_coerce, update

from securelogin.domain.audit import (
    AuditEvent,
    AuditRecord,
    StoredRecord,
    UnreadableRecord,
    chain,
)
from securelogin.storage.prepared import Prepared
from securelogin.storage.tables import audit_head, audit_records

HEAD_ID = 1
READ_BATCH = 1000

# Built once (appending is on the path of every login): the head, locked; the records with
# the move of the head. On PostgreSQL both in one statement (the head moved by a
# data-modifying WITH), on SQLite (no such WITH, no round trips either) in two.
_LOCK_HEAD = Prepared(
    select(audit_head.c.seq, audit_head.c.record_hash)
    .where(audit_head.c.head_id == HEAD_ID)
    .with_for_update()
)
_RECORD_COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "subject",
    "outcome",
    "source",
    "details",
    "prev_hash",
    "record_hash",
)
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.head_id == HEAD_ID)
    .values(seq=bindparam("p_seq"), record_hash=bindparam("p_hash"))
)
_MOVE_HEAD_ALONE = Prepared(_MOVE_HEAD)
_MOST_AT_ONCE = 8  # records written by one statement; a transaction rarely writes more
_INSERTS: dict[tuple[int, bool], Prepared] = {}


def _insert(count: int, *, moving_head: bool) -> Prepared:
    """INSERT of ``count`` records (parameters ``seq_0``, ``at_0`` …), moving the head too
    when ``moving_head``."""
    found = _INSERTS.get((count, moving_head))
    if found is None:
        rows = [
            {c: bindparam(f"{c}_{i}", type_=audit_records.c[c].type) for c in _RECORD_COLUMNS}
            for i in range(count)
        ]
        statement = audit_records.insert().values(rows)
        if moving_head:
            statement = statement.add_cte(_MOVE_HEAD.returning(audit_head.c.seq).cte("moved"))
        found = _INSERTS[(count, moving_head)] = Prepared(statement)
    return found


class SqlAuditLog:
    """AuditLog on one connection. Appends serialise on the head row's lock.

    Appends are chained and written when the unit of work commits (``flush``): one read of
    the locked head, then one statement for the records of the transaction and the move of
    the head (two on SQLite).
    So the head, which every audited transaction in the system must lock in turn, is held
    only for the last statements before the commit (it is also last in the lock order:
    subject, devices, audit head), and a transaction that writes nothing else writes no
    audit record either if it rolls back, exactly as before.
    """

    def __init__(self, connection: Connection) -> None:
        self._c = connection
        self._events: list[AuditEvent] = []

    def append(self, event: AuditEvent) -> None:
        self._events.append(event)

    def flush(self) -> list[AuditRecord]:
        """Chain and write the events appended so far (the unit of work calls this just
        before it commits); the records written."""
        if not self._events:
            return []
        events, self._events = self._events, []
        row = _LOCK_HEAD.run(self._c).one()
        seq, head_hash = int(row.seq), str(row.record_hash)
        records = []
        for event in events:
            record = chain(seq + 1, event, head_hash)
            records.append(record)
            seq, head_hash = record.seq, record.record_hash
        self._write(records, {"p_seq": seq, "p_hash": head_hash})
        return records

    def _write(self, records: list[AuditRecord], head: dict[str, object]) -> None:
        together = self._c.dialect.name == "postgresql"
        for start in range(0, len(records), _MOST_AT_ONCE):
            batch = records[start : start + _MOST_AT_ONCE]
            last = start + _MOST_AT_ONCE >= len(records)
            params: dict[str, object] = dict(head) if last and together else {}
            for i, record in enumerate(batch):
                params.update({f"{k}_{i}": v for k, v in _row(record).items()})
            _insert(len(batch), moving_head=last and together).queue(self._c, params)
        if not together:
            _MOVE_HEAD_ALONE.queue(self._c, head)

    def records(self, subject: str | None = None) -> Iterator[StoredRecord]:
        self.flush()
        query = select(*_READ_COLUMNS).order_by(audit_records.c.seq)
        if subject is not None:
            query = query.where(audit_records.c.subject == subject)
        result = self._c.execution_options(yield_per=READ_BATCH).execute(query)
        for row in result:
            yield _record(row._mapping)

    def head(self) -> tuple[int, str]:
        self.flush()
        row = self._c.execute(
            select(audit_head.c.seq, audit_head.c.record_hash).where(
                audit_head.c.head_id == HEAD_ID
            )
        ).one()
        return int(row.seq), str(row.record_hash)


def _row(record: AuditRecord) -> dict[str, object]:
    event = record.event
    return {
        "seq": record.seq,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "outcome": event.outcome,
        "source": event.source,
        "details": _details_text(event),
        "prev_hash": record.prev_hash,
        "record_hash": record.record_hash,
    }


def _details_text(event: AuditEvent) -> str:
    return json.dumps(dict(event.details), sort_keys=True, separators=(",", ":"))


# The records as stored, the time as the driver gives it: on SQLite a text that SQLAlchemy
# would parse while fetching (so one that is not a time would end the whole read), parsed
# here instead as SQLAlchemy parses it, row by row (_stored_time).
_READ_COLUMNS = tuple(
    type_coerce(column, String).label(column.name) if column.name == "at" else column
    for column in audit_records.c
)


class _UnreadableError(Exception):
    """A stored field that no record the service writes could hold."""


def _record(row: Any) -> StoredRecord:
    """The record of a row, or an ``UnreadableRecord`` (with why, never what) for a row no
    append could have written: only a change behind the service's back stores one, and
    the walk of ``audit verify`` must name it, not stop on it (R9.2)."""
    seq = int(row["seq"])  # the primary key: an integer on both databases
    try:
        details = _stored_details(row["details"])
        try:
            event = AuditEvent(
                at=_stored_time(row["at"]),
                actor=_text(row, "actor"),
                action=_text(row, "action"),
                subject=_optional_text(row, "subject"),
                outcome=_text(row, "outcome"),
                source=_optional_text(row, "source"),
                details=details,
            )
        except ValueError:  # AuditEvent's own refusal: a key that is never written
            raise _UnreadableError("its details hold a key that is never written") from None
        return AuditRecord(seq, event, _text(row, "prev_hash"), _text(row, "record_hash"))
    except _UnreadableError as unreadable:
        return UnreadableRecord(seq, str(unreadable))


def _stored_details(value: object) -> dict[str, Any]:
    try:
        details = json.loads(value) if isinstance(value, str) else None
    except (ValueError, RecursionError):  # not JSON; JSON nested deeper than Python goes
        details = None
    if not isinstance(details, dict):
        raise _UnreadableError("its details are not a JSON object")
    return details


def _stored_time(value: object) -> datetime:
    """An aware UTC time, as ``UtcDateTime`` reads one (SQLite: ISO text, as SQLAlchemy's
    own parser reads it; PostgreSQL: a naive ``datetime`` from the driver)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            value = None
    if not isinstance(value, datetime) or value.tzinfo is not None:
        raise _UnreadableError("its time is not a stored UTC time")
    return value.replace(tzinfo=UTC)


def _text(row: Any, column: str) -> str:
    value = row[column]
    if not isinstance(value, str):  # SQLite keeps whatever a column is given
        raise _UnreadableError(f"its {column} is not text")
    return value


def _optional_text(row: Any, column: str) -> str | None:
    return None if row[column] is None else _text(row, column)
