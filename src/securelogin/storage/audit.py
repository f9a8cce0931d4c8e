"""R9 in SQL: append under a lock on the head row, so the chain has one order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from securelogin.domain.audit import AuditEvent, AuditRecord, chain
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
            _insert(len(batch), moving_head=last and together).run(self._c, params)
        if not together:
            _MOVE_HEAD_ALONE.run(self._c, head)

    def records(self, subject: str | None = None) -> Iterator[AuditRecord]:
        self.flush()
        query = select(audit_records).order_by(audit_records.c.seq)
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


def _record(row: Any) -> AuditRecord:
    event = AuditEvent(
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        outcome=row["outcome"],
        source=row["source"],
        details=json.loads(row["details"]),
    )
    return AuditRecord(int(row["seq"]), event, row["prev_hash"], row["record_hash"])
