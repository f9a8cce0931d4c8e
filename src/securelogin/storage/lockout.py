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

from sqlalchemy import BindParameter, Connection, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from securelogin.domain.lockout import LockoutPolicy, is_locked, lock_after_failure, window_start
from securelogin.services.ports import Admitted, Busy, Refused
from securelogin.storage.tables import lockout_failures, lockout_subjects

PENDING_GRACE = timedelta(seconds=60)  # far longer than any evaluation (an argon2id check)
failures = lockout_failures.c
subjects = lockout_subjects.c

# Every statement is built once, with named parameters: building a SQLAlchemy statement
# costs several times what executing a prebuilt one does, on the path of every login.
SUBJECT: BindParameter[str] = bindparam("p_subject")
NOW: BindParameter[datetime] = bindparam("p_now")
START: BindParameter[datetime] = bindparam("p_start")
FAILURE: BindParameter[int] = bindparam("p_failure")
_ENSURE_SUBJECT = {
    dialect.__name__.rsplit(".", 1)[-1]: dialect.insert(lockout_subjects)
    .values(subject=SUBJECT)
    .on_conflict_do_nothing(index_elements=["subject"])
    for dialect in (postgresql, sqlite)
}
_LOCK_SUBJECT = select(subjects.locked_until).where(subjects.subject == SUBJECT).with_for_update()
_LOCKED_UNTIL = select(subjects.locked_until).where(subjects.subject == SUBJECT)
_SET_LOCK = (
    update(lockout_subjects)
    .where(subjects.subject == SUBJECT)
    .values(locked_until=bindparam("p_until"), locked_by_failure=FAILURE)
)
_CLEAR_LOCK = (
    update(lockout_subjects)
    .where(subjects.subject == SUBJECT)
    .values(locked_until=None, locked_by_failure=None)
)
_PRUNE = delete(lockout_failures).where(failures.subject == SUBJECT, failures.failed_at < START)
_SETTLE_ABANDONED = (
    update(lockout_failures)
    .where(
        failures.subject == SUBJECT,
        failures.settled_at.is_(None),
        failures.failed_at < bindparam("p_before"),
    )
    .values(settled_at=NOW)
    .returning(failures.failure_id)
)
_COUNT = {
    settled: select(func.count())
    .select_from(lockout_failures)
    .where(
        failures.subject == SUBJECT,
        failures.failed_at >= START,
        failures.settled_at.is_not(None) if settled else failures.settled_at.is_(None),
    )
    for settled in (True, False)
}
_ADD_PENDING = (
    lockout_failures.insert().values(subject=SUBJECT, failed_at=NOW).returning(failures.failure_id)
)
_CONFIRM = (
    update(lockout_failures)
    .where(failures.failure_id == FAILURE, failures.settled_at.is_(None))
    .values(settled_at=NOW)
)
_WITHDRAW = delete(lockout_failures).where(failures.failure_id == FAILURE)
_DELETE_SETTLED = delete(lockout_failures).where(
    failures.subject == SUBJECT, failures.settled_at.is_not(None)
)
_END_RUN = delete(lockout_failures).where(
    failures.subject == SUBJECT,
    failures.failed_at <= bindparam("p_last"),
    failures.settled_at.is_not(None),
)
_NEWEST_SETTLED = (
    select(failures.failure_id, failures.failed_at)
    .where(failures.subject == SUBJECT, failures.settled_at.is_not(None))
    .order_by(failures.failed_at.desc(), failures.failure_id.desc())
    .limit(1)
)


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
        self._c.execute(_PRUNE, {"p_subject": subject, "p_start": start})
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
            _ADD_PENDING, {"p_subject": subject, "p_now": now}
        ).scalar_one()
        return Admitted(int(failure_id))

    def confirm(
        self, subject: str, failure_id: int, now: datetime, policy: LockoutPolicy
    ) -> datetime | None:
        self._hold(subject)
        settled = self._c.execute(_CONFIRM, {"p_failure": failure_id, "p_now": now}).rowcount
        if settled != 1:  # a successful login reset the run meanwhile
            return None
        return self._lock_if_due(subject, policy)

    def withdraw(self, subject: str, failure_id: int) -> None:
        self._hold(subject)
        self._c.execute(_WITHDRAW, {"p_failure": failure_id})

    def hold(self, subject: str) -> None:
        self._hold(subject)

    def reset(self, subject: str) -> None:
        self._hold(subject)
        # Only settled failures: a guess still being evaluated is settled by its own request
        # after this success, and counts in the new run if it was wrong (R3.4, R3.5).
        self._c.execute(_DELETE_SETTLED, {"p_subject": subject})
        self._c.execute(_CLEAR_LOCK, {"p_subject": subject})

    def locked_until(self, subject: str, now: datetime) -> datetime | None:
        value = self._c.execute(_LOCKED_UNTIL, {"p_subject": subject}).scalar_one_or_none()
        return value if value is not None and is_locked(value, now) else None

    def _end_run(self, subject: str, last_failure_at: datetime) -> None:
        self._c.execute(_END_RUN, {"p_subject": subject, "p_last": last_failure_at})
        self._c.execute(_CLEAR_LOCK, {"p_subject": subject})

    def _settle_abandoned(
        self, subject: str, now: datetime, policy: LockoutPolicy
    ) -> datetime | None:
        """Count pending rows of dead processes as failures; the lock end if that locks."""
        abandoned = self._c.execute(
            _SETTLE_ABANDONED,
            {"p_subject": subject, "p_now": now, "p_before": now - PENDING_GRACE},
        ).all()
        if not abandoned:
            return None
        lock = self._lock_if_due(subject, policy)
        return lock if lock is not None and is_locked(lock, now) else None

    def _lock_if_due(self, subject: str, policy: LockoutPolicy) -> datetime | None:
        """R3.2: lock when the newest settled failure is the threshold-th settled one within
        the window that ends at it (whatever order concurrent attempts settled in)."""
        newest = self._c.execute(_NEWEST_SETTLED, {"p_subject": subject}).first()
        if newest is None:
            return None
        in_window = self._count(subject, window_start(policy, newest.failed_at), settled=True)
        locks_until = lock_after_failure(policy, in_window, newest.failed_at)
        if locks_until is not None:
            self._c.execute(
                _SET_LOCK,
                {"p_subject": subject, "p_until": locks_until, "p_failure": newest.failure_id},
            )
        return locks_until

    def _count(self, subject: str, start: datetime, *, settled: bool) -> int:
        return int(
            self._c.execute(_COUNT[settled], {"p_subject": subject, "p_start": start}).scalar_one()
        )

    def _hold(self, subject: str) -> None:
        """Lock the subject's row unless this transaction already holds it (a row lock lasts
        until the transaction ends, so taking it again would only cost two statements)."""
        if self._c.get_transaction() is self._held_in and subject in self._held:
            return
        self._lock_subject(subject)

    def _lock_subject(self, subject: str) -> datetime | None:
        """Make sure the subject's row exists, lock it, and return its ``locked_until``."""
        self._c.execute(_ENSURE_SUBJECT[self._c.dialect.name], {"p_subject": subject})
        locked_until: datetime | None = self._c.execute(
            _LOCK_SUBJECT, {"p_subject": subject}
        ).scalar_one()
        transaction = self._c.get_transaction()
        if transaction is not self._held_in:
            self._held, self._held_in = set(), transaction
        self._held.add(subject)
        return locked_until
