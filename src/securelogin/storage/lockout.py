"""R3 in SQL: the admission decision and the count are one transaction under a row lock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from securelogin.domain.lockout import LockoutPolicy, is_locked, lock_after_failure, window_start
from securelogin.services.ports import Admitted, Refused
from securelogin.storage.tables import lockout_failures, lockout_subjects


class SqlLockoutRepository:
    """LockoutRepository on one connection inside the unit of work's transaction.

    Every method first takes the subject's row lock (``FOR UPDATE`` on PostgreSQL; SQLite
    transactions are ``BEGIN IMMEDIATE`` and so already exclusive), then reads and writes
    under it: no decision is ever made on a value another transaction may be changing.
    """

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def admit(self, subject: str, now: datetime, policy: LockoutPolicy) -> Admitted | Refused:
        locked_until = self._lock_subject(subject)
        if locked_until is not None and is_locked(locked_until, now):
            return Refused(locked_until)
        start = window_start(policy, now)
        self._c.execute(
            delete(lockout_failures).where(
                lockout_failures.c.subject == subject, lockout_failures.c.failed_at < start
            )
        )
        failure_id = self._c.execute(
            lockout_failures.insert()
            .values(subject=subject, failed_at=now)
            .returning(lockout_failures.c.failure_id)
        ).scalar_one()
        in_window = self._c.execute(
            select(func.count())
            .select_from(lockout_failures)
            .where(lockout_failures.c.subject == subject, lockout_failures.c.failed_at >= start)
        ).scalar_one()
        locks_until = lock_after_failure(policy, in_window, now)
        if locks_until is not None:
            self._c.execute(
                update(lockout_subjects)
                .where(lockout_subjects.c.subject == subject)
                .values(locked_until=locks_until, locked_by_failure=failure_id)
            )
        return Admitted(failure_id, locks_until)

    def withdraw(self, subject: str, failure_id: int) -> None:
        self._lock_subject(subject)
        self._c.execute(delete(lockout_failures).where(lockout_failures.c.failure_id == failure_id))
        self._c.execute(
            update(lockout_subjects)
            .where(
                lockout_subjects.c.subject == subject,
                lockout_subjects.c.locked_by_failure == failure_id,
            )
            .values(locked_until=None, locked_by_failure=None)
        )

    def reset(self, subject: str) -> None:
        self._lock_subject(subject)
        self._c.execute(delete(lockout_failures).where(lockout_failures.c.subject == subject))
        self._c.execute(
            update(lockout_subjects)
            .where(lockout_subjects.c.subject == subject)
            .values(locked_until=None, locked_by_failure=None)
        )

    def locked_until(self, subject: str, now: datetime) -> datetime | None:
        value = self._c.execute(
            select(lockout_subjects.c.locked_until).where(lockout_subjects.c.subject == subject)
        ).scalar_one_or_none()
        return value if is_locked(value, now) else None

    def _lock_subject(self, subject: str) -> datetime | None:
        """Make sure the subject's row exists, lock it, and return its ``locked_until``."""
        dialect = self._c.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._c.execute(
            insert(lockout_subjects)
            .values(subject=subject)
            .on_conflict_do_nothing(index_elements=["subject"])
        )
        row = self._c.execute(
            select(lockout_subjects.c.locked_until)
            .where(lockout_subjects.c.subject == subject)
            .with_for_update()
        ).one()
        locked_until: datetime | None = row.locked_until
        return locked_until
