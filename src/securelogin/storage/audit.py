"""R9 in SQL: append under a lock on the head row, so the chain has one order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from securelogin.domain.audit import AuditEvent, AuditRecord, chain
from securelogin.storage.tables import audit_head, audit_records

HEAD_ID = 1
READ_BATCH = 1000

# Built once (appending is on the path of every login): the head, locked; a record; the
# new head.
_LOCK_HEAD = (
    select(audit_head.c.seq, audit_head.c.record_hash)
    .where(audit_head.c.head_id == HEAD_ID)
    .with_for_update()
)
_INSERT_RECORD = audit_records.insert()
_MOVE_HEAD = (
    update(audit_head)
    .where(audit_head.c.head_id == HEAD_ID)
    .values(seq=bindparam("p_seq"), record_hash=bindparam("p_hash"))
)


class SqlAuditLog:
    """AuditLog on one connection. Appends serialise on the head row's lock."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection
        # The head as this transaction last wrote it: its row stays locked until the end of
        # the transaction, so a second append in it need not read the head again.
        self._head: tuple[int, str] | None = None
        self._head_in: object = None

    def append(self, event: AuditEvent) -> AuditRecord:
        transaction = self._c.get_transaction()
        if self._head is None or self._head_in is not transaction:
            row = self._c.execute(_LOCK_HEAD).one()
            self._head, self._head_in = (row.seq, row.record_hash), transaction
        seq, head_hash = self._head
        record = chain(seq + 1, event, head_hash)
        self._c.execute(
            _INSERT_RECORD,
            {
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
            },
        )
        self._c.execute(_MOVE_HEAD, {"p_seq": record.seq, "p_hash": record.record_hash})
        self._head = (record.seq, record.record_hash)
        return record

    def records(self, subject: str | None = None) -> Iterator[AuditRecord]:
        query = select(audit_records).order_by(audit_records.c.seq)
        if subject is not None:
            query = query.where(audit_records.c.subject == subject)
        result = self._c.execution_options(yield_per=READ_BATCH).execute(query)
        for row in result:
            yield _record(row._mapping)

    def head(self) -> tuple[int, str]:
        row = self._c.execute(
            select(audit_head.c.seq, audit_head.c.record_hash).where(
                audit_head.c.head_id == HEAD_ID
            )
        ).one()
        return int(row.seq), str(row.record_hash)


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
