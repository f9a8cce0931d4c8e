"""Reading and proving the audit log (R9)."""

from __future__ import annotations

from dataclasses import dataclass

from securelogin.domain.audit import AuditRecord, first_broken_record
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


def audit_records(ctx: Context, username: str | None) -> list[AuditRecord]:
    """The records about one user (or all), oldest first."""
    with ctx.uow() as uow:
        return list(uow.audit.records(username))


def verify_audit_chain(ctx: Context) -> ChainReport:
    """R9.2: walk the whole chain and name the first record that breaks it."""
    with ctx.uow() as uow:
        head_seq, head_hash = uow.audit.head()
        broken = first_broken_record(uow.audit.records(None), head_seq, head_hash)
    if broken is None:
        return ChainReport(head_seq)
    return ChainReport(head_seq, broken[0], broken[1])
