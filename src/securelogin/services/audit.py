"""Reading and proving the audit log (R9)."""

from __future__ import annotations

from dataclasses import dataclass

from securelogin.domain.audit import StoredRecord, first_broken_record
from securelogin.services.context import Context


@dataclass(frozen=True)
class ChainReport:
    """The outcome of ``verify_audit_chain``."""

    records: int
    broken_at: int | None = None
    reason: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def audit_records(ctx: Context, username: str | None) -> list[StoredRecord]:
    """The records about one user (or all), oldest first; a row that cannot be read back
    as a record comes as an ``UnreadableRecord`` in its place."""
    with ctx.uow(read_only=True) as uow:
        return list(uow.audit.records(username))


def verify_audit_chain(ctx: Context) -> ChainReport:
    """R9.2: walk the whole chain and name the first record that breaks it.

    The head and the records are read in one read-only unit of work, one snapshot: the
    records committed after the head was read are not seen (they are no break), and the
    walk holds no login up, however long the log (storage/engine.py, ``begin_read_only``).
    """
    with ctx.uow(read_only=True) as uow:
        head_seq, head_hash = uow.audit.head()
        broken = first_broken_record(uow.audit.records(None), head_seq, head_hash)
    if broken is None:
        return ChainReport(head_seq)
    return ChainReport(head_seq, broken[0], broken[1])
