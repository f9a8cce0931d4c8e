"""R3 in SQL: every decision about a subject is made under the lock on its row.

An attempt is admitted only while the settled failures plus the attempts being evaluated
stay below the threshold, so no more than ``threshold`` wrong attempts can ever be
evaluated (R3.5); an attempt that would exceed it is told to wait (``Busy``) until those
in flight are settled. The lock is set when the threshold-th failure is *settled*, so
right passwords in flight never lock anyone. A pending row older than
``PENDING_GRACE`` belongs to a process that died while evaluating: it counts as a failure
(a crash can never lose a count).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from securelogin.domain.lockout import LockoutPolicy, is_locked, lock_after_failure, window_start
from securelogin.services.ports import Admitted, Busy, Refused
from securelogin.storage.tables import lockout_failures, lockout_subjects

PENDING_GRACE = timedelta(seconds=60)  # far longer than any evaluation (an argon2id check)
failures = lockout_failures.c


class SqlLockoutRepository:
    """LockoutRepository on one connection inside the unit of work's transaction.

    Every method first takes the subject's row lock (``FOR UPDATE`` on PostgreSQL; SQLite
    transactions are ``BEGIN IMMEDIATE`` and so already exclusive), then reads and writes
    under it: no decision is ever made on a value another transaction may be changing.
    """

    def __init__(self, connection: Connection) -> None:
        self._c = connection
        self._held: set[str] = set()  # subjects whose row this transaction has locked
        self._held_in: object = None  # ...in this transaction (a new one forgets them)

    def admit(
        self, subject: str, now: datetime, policy: LockoutPolicy
    ) -> Admitted | Refused | Busy:
        locked_until = self._lock_subject(subject)  # always read: the value decides
        if locked_until is not None and is_locked(locked_until, now):
            return Refused(locked_until)
        if locked_until is not None:  # the lock has ended: so has the run that caused it
            self._end_run(subject, locked_until - policy.duration)
        start = window_start(policy, now)
        self._c.execute(
            delete(lockout_failures).where(failures.subject == subject, failures.failed_at < start)
        )
        crashed_lock = self._settle_abandoned(subject, now, policy)
        if crashed_lock is not None:
            return Refused(crashed_lock, newly_locked=True)
        settled = self._count(subject, start, settled=True)
        if settled >= policy.threshold:  # never left so; lock rather than wait forever
            lock = self._lock_if_due(subject, policy)
            if lock is not None and is_locked(lock, now):
                return Refused(lock, newly_locked=True)
        if settled + self._count(subject, start, settled=False) >= policy.threshold:
            return Busy()
        failure_id = self._c.execute(
            lockout_failures.insert()
            .values(subject=subject, failed_at=now)
            .returning(failures.failure_id)
        ).scalar_one()
        return Admitted(int(failure_id))

    def confirm(
        self, subject: str, failure_id: int, now: datetime, policy: LockoutPolicy
    ) -> datetime | None:
        self._hold(subject)
        settled = self._c.execute(
            update(lockout_failures)
            .where(failures.failure_id == failure_id, failures.settled_at.is_(None))
            .values(settled_at=now)
        ).rowcount
        if settled != 1:  # a successful login reset the run meanwhile
            return None
        return self._lock_if_due(subject, policy)

    def withdraw(self, subject: str, failure_id: int) -> None:
        self._hold(subject)
        self._c.execute(delete(lockout_failures).where(failures.failure_id == failure_id))

    def hold(self, subject: str) -> None:
        self._hold(subject)

    def reset(self, subject: str) -> None:
        self._hold(subject)
        # Only settled failures: a guess still being evaluated is settled by its own request
        # after this success, and counts in the new run if it was wrong (R3.4, R3.5).
        self._c.execute(
            delete(lockout_failures).where(
                failures.subject == subject, failures.settled_at.is_not(None)
            )
        )
        self._c.execute(
            update(lockout_subjects)
            .where(lockout_subjects.c.subject == subject)
            .values(locked_until=None, locked_by_failure=None)
        )

    def locked_until(self, subject: str, now: datetime) -> datetime | None:
        value = self._c.execute(
            select(lockout_subjects.c.locked_until).where(lockout_subjects.c.subject == subject)
        ).scalar_one_or_none()
        return value if value is not None and is_locked(value, now) else None

    def _end_run(self, subject: str, last_failure_at: datetime) -> None:
        self._c.execute(
            delete(lockout_failures).where(
                failures.subject == subject,
                failures.failed_at <= last_failure_at,
                failures.settled_at.is_not(None),
            )
        )
        self._c.execute(
            update(lockout_subjects)
            .where(lockout_subjects.c.subject == subject)
            .values(locked_until=None, locked_by_failure=None)
        )

    def _settle_abandoned(
        self, subject: str, now: datetime, policy: LockoutPolicy
    ) -> datetime | None:
        """Count pending rows of dead processes as failures; the lock end if that locks."""
        abandoned = self._c.execute(
            update(lockout_failures)
            .where(
                failures.subject == subject,
                failures.settled_at.is_(None),
                failures.failed_at < now - PENDING_GRACE,
            )
            .values(settled_at=now)
            .returning(failures.failure_id)
        ).all()
        if not abandoned:
            return None
        lock = self._lock_if_due(subject, policy)
        return lock if lock is not None and is_locked(lock, now) else None

    def _lock_if_due(self, subject: str, policy: LockoutPolicy) -> datetime | None:
        """R3.2: lock when the newest settled failure is the threshold-th settled one within
        the window that ends at it (whatever order concurrent attempts settled in)."""
        newest = self._c.execute(
            select(failures.failure_id, failures.failed_at)
            .where(failures.subject == subject, failures.settled_at.is_not(None))
            .order_by(failures.failed_at.desc(), failures.failure_id.desc())
            .limit(1)
        ).first()
        if newest is None:
            return None
        in_window = self._count(subject, window_start(policy, newest.failed_at), settled=True)
        locks_until = lock_after_failure(policy, in_window, newest.failed_at)
        if locks_until is not None:
            self._c.execute(
                update(lockout_subjects)
                .where(lockout_subjects.c.subject == subject)
                .values(locked_until=locks_until, locked_by_failure=newest.failure_id)
            )
        return locks_until

    def _count(self, subject: str, start: datetime, *, settled: bool) -> int:
        query = (
            select(func.count())
            .select_from(lockout_failures)
            .where(
                failures.subject == subject,
                failures.failed_at >= start,
                failures.settled_at.is_not(None) if settled else failures.settled_at.is_(None),
            )
        )
        return int(self._c.execute(query).scalar_one())

    def _hold(self, subject: str) -> None:
        """Lock the subject's row unless this transaction already holds it (a row lock lasts
        until the transaction ends, so taking it again would only cost two statements)."""
        if self._c.get_transaction() is self._held_in and subject in self._held:
            return
        self._lock_subject(subject)

    def _lock_subject(self, subject: str) -> datetime | None:
        """Make sure the subject's row exists, lock it, and return its ``locked_until``."""
        insert = postgresql.insert if self._c.dialect.name == "postgresql" else sqlite.insert
        self._c.execute(
            insert(lockout_subjects)
            .values(subject=subject)
            .on_conflict_do_nothing(index_elements=["subject"])
        )
        locked_until: datetime | None = self._c.execute(
            select(lockout_subjects.c.locked_until)
            .where(lockout_subjects.c.subject == subject)
            .with_for_update()
        ).scalar_one()
        transaction = self._c.get_transaction()
        if transaction is not self._held_in:
            self._held, self._held_in = set(), transaction
        self._held.add(subject)
        return locked_until
