"""R3 in SQL: every decision about a subject is made under the lock on its row.

An attempt is admitted only while the settled failures plus the attempts being evaluated
stay below the threshold, so no more than ``threshold`` wrong attempts can ever be
evaluated (R3.5); an attempt that would exceed it is told to wait (``Busy``) until those
in flight are settled. The lock is set when the threshold-th failure is *settled*, so
right passwords in flight never lock anyone. A pending row older than
``PENDING_GRACE`` belongs to a process that died while evaluating: it counts as a failure
(a crash can never lose a count), settled before anything is pruned.

The window that decides an admission reaches back from the *oldest attempt in flight*, not
only from now: a guess admitted a moment before the 24 hours since the first of nine
failures ran out makes ten within 24 hours if it is wrong, and then locks. So failures that
a guess in flight still needs are neither pruned nor left out of the count, and a new
attempt waits (``Busy``) until that guess is settled and, if it locked, is refused.

Statement economy (these statements are on the path of every login; on PostgreSQL a round
trip costs more than most of them): the subject's row is made if missing (``INSERT … ON
CONFLICT DO NOTHING``, sent with the lock every time, so that a name never tried costs the
same statements and round trips as one tried before, as a real user's usually is: a
round trip more for it alone would be a difference in timing) and locked by one ``SELECT …
FOR UPDATE``; one tally reads the settled, pending, stale and abandoned failures together,
sent in the same round trip as the lock (a statement of its own, run once the lock is had);
the rare repairs (pruning, settling the abandoned) run only when the tally finds something
to repair. Writes whose result nothing reads are sent with the transaction's next
statement or its commit (``queue``, storage/pipeline.py), and so is the lock when only held
(``_hold``): the server takes it before it runs anything that follows. So is an admission's
pending failure, whose id is read only once its transaction has committed
(``queue_returning``): it goes with the transaction's next statement (in a login, the
audit head's lock, which services/attempts.py's admission sends next). While this
transaction holds the row lock, nobody else can change the subject's lock or its settled
failures, so what this transaction has read or written of them stays true until it ends
(``_Held``) and is not read again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, Connection, and_, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from securelogin.domain.lockout import LockoutPolicy, is_locked, lock_after_failure, window_start
from securelogin.services.ports import Admitted, Busy, Refused
from securelogin.storage.prepared import Prepared, Result, run_together
from securelogin.storage.tables import lockout_failures, lockout_subjects

PENDING_GRACE = timedelta(seconds=60)  # far longer than any evaluation (an argon2id check)
failures = lockout_failures.c
subjects = lockout_subjects.c

# Every statement is built once, with named parameters, and prepared (storage/prepared.py):
# they are on the path of every login.
SUBJECT: BindParameter[str] = bindparam("p_subject")
NOW: BindParameter[datetime] = bindparam("p_now")
START: BindParameter[datetime] = bindparam("p_start")
BEFORE: BindParameter[datetime] = bindparam("p_before")
FAILURE: BindParameter[int] = bindparam("p_failure")
_ENSURE_SUBJECT = {
    dialect.__name__.rsplit(".", 1)[-1]: Prepared(
        dialect.insert(lockout_subjects)
        .values(subject=SUBJECT)
        .on_conflict_do_nothing(index_elements=["subject"])
    )
    for dialect in (postgresql, sqlite)
}
_LOCK_SUBJECT = Prepared(
    select(subjects.locked_until).where(subjects.subject == SUBJECT).with_for_update()
)
_LOCKED_UNTIL = Prepared(select(subjects.locked_until).where(subjects.subject == SUBJECT))
_SET_LOCK = Prepared(
    update(lockout_subjects)
    .where(subjects.subject == SUBJECT)
    .values(locked_until=bindparam("p_until"), locked_by_failure=FAILURE)
)
_CLEAR_LOCK = Prepared(
    update(lockout_subjects)
    .where(subjects.subject == SUBJECT)
    .values(locked_until=None, locked_by_failure=None)
)
_IN_WINDOW = failures.failed_at >= START
_SETTLED = failures.settled_at.is_not(None)
_PENDING = failures.settled_at.is_(None)
_TALLY = Prepared(
    select(
        func.count().filter(and_(_IN_WINDOW, _SETTLED)).label("settled"),
        func.count().filter(and_(_IN_WINDOW, _PENDING)).label("pending"),
        func.count().filter(failures.failed_at < START).label("stale"),
        func.count().filter(and_(_PENDING, failures.failed_at < BEFORE)).label("abandoned"),
        func.min(failures.failed_at).filter(_PENDING).label("oldest_pending"),
    ).where(failures.subject == SUBJECT)
)
_KEEP_FROM: BindParameter[datetime] = bindparam("p_keep_from")
_BEFORE_WINDOW = Prepared(  # the failures before this window that one in flight still needs
    select(
        func.count()
        .filter(and_(failures.failed_at >= _KEEP_FROM, failures.failed_at < START, _SETTLED))
        .label("needed"),
        func.count().filter(failures.failed_at < _KEEP_FROM).label("unneeded"),
    ).where(failures.subject == SUBJECT)
)
_PRUNE = Prepared(
    delete(lockout_failures).where(failures.subject == SUBJECT, failures.failed_at < START)
)
_SETTLE_ABANDONED = Prepared(
    update(lockout_failures)
    .where(failures.subject == SUBJECT, _PENDING, failures.failed_at < BEFORE)
    .values(settled_at=NOW)
)
_ADD_PENDING = Prepared(
    lockout_failures.insert().values(subject=SUBJECT, failed_at=NOW).returning(failures.failure_id)
)
_ADD_SETTLED = Prepared(
    lockout_failures.insert().values(subject=SUBJECT, failed_at=bindparam("p_at"), settled_at=NOW)
)
_CONFIRM = Prepared(
    update(lockout_failures).where(failures.failure_id == FAILURE, _PENDING).values(settled_at=NOW)
)
_WITHDRAW = Prepared(delete(lockout_failures).where(failures.failure_id == FAILURE))
_DELETE_SETTLED = Prepared(delete(lockout_failures).where(failures.subject == SUBJECT, _SETTLED))
_END_RUN = Prepared(
    delete(lockout_failures).where(
        failures.subject == SUBJECT, failures.failed_at <= bindparam("p_last"), _SETTLED
    )
)
_NEWEST_SETTLED = Prepared(  # the newest ``threshold`` settled failures, newest first
    select(failures.failure_id, failures.failed_at)
    .where(failures.subject == SUBJECT, _SETTLED)
    .order_by(failures.failed_at.desc(), failures.failure_id.desc())
    .limit(bindparam("p_threshold"))
)


class _Tally(NamedTuple):
    settled: int  # settled failures in the window
    pending: int  # attempts in the window being evaluated
    stale: int  # failures older than the window (to prune, unless one in flight needs them)
    abandoned: int  # pending rows older than PENDING_GRACE (of a process that died)
    oldest_pending: datetime | None  # when the oldest attempt being evaluated was admitted


@dataclass
class _Held:
    """What this transaction knows of a subject whose row it has locked. Only the holder
    of the row lock changes these, so they stay true until the transaction ends."""

    locked_until: datetime | None
    settled: int | None = None  # settled failure rows; None when not known
    unreserved: int = 0  # admissions of this transaction with no pending row
    lock_known: bool = True  # False: locked_until was not read (the row locked by ``_hold``)


class SqlLockoutRepository:
    """LockoutRepository on one connection inside the unit of work's transaction.

    Every method first takes the subject's row lock (``FOR UPDATE`` on PostgreSQL; SQLite
    transactions are ``BEGIN IMMEDIATE`` and so already exclusive), then reads and writes
    under it: no decision is ever made on a value another transaction may be changing.
    """

    def __init__(self, connection: Connection) -> None:
        self._c = connection
        self._held: dict[str, _Held] = {}  # subjects whose row this transaction has locked
        self._held_in: object = None  # ...in this transaction (a new one forgets them)

    def admit(
        self, subject: str, now: datetime, policy: LockoutPolicy, *, reserve: bool = True
    ) -> Admitted | Refused | Busy:
        start = window_start(policy, now)
        held, tally = self._lock_subject_and_tally(subject, start, now)  # always read
        if held.locked_until is not None and is_locked(held.locked_until, now):
            return Refused(held.locked_until)
        if held.locked_until is not None:  # the lock has ended: so has the run that caused it
            self._end_run(subject, held, held.locked_until - policy.duration)
            tally = self._tally(subject, start, now)  # again: the first was before the end
        if tally.abandoned:  # first, so that their own window is still whole
            crashed_lock = self._settle_abandoned(subject, held, now, policy)
            if crashed_lock is not None:
                return Refused(crashed_lock, newly_locked=True)
            tally = self._tally(subject, start, now)
        needed = self._prune(subject, start, tally, policy) if tally.stale else 0
        held.settled = tally.settled + needed  # pruned: every settled row left is counted
        if tally.settled >= policy.threshold:  # never left so; lock rather than wait forever
            lock = self._lock_if_due(subject, held, policy)
            if lock is not None and is_locked(lock, now):
                return Refused(lock, newly_locked=True)
        # The failures in this window and those a guess in flight still needs, the guesses
        # in flight, and this transaction's own admissions not yet settled (unreserved):
        if tally.settled + needed + tally.pending + held.unreserved >= policy.threshold:
            return Busy()
        if not reserve:  # settled in this same transaction: no other can see a pending row
            held.unreserved += 1
            return Admitted(now)
        # Its id is read only once committed: sent with the transaction's next statement
        # (the audit head's lock) or its commit, a round trip fewer on PostgreSQL.
        added = _ADD_PENDING.queue_returning(self._c, {"p_subject": subject, "p_now": now})
        return Admitted(now, lambda: int(added.result().scalar()))

    def confirm(
        self, subject: str, admission: Admitted, now: datetime, policy: LockoutPolicy
    ) -> datetime | None:
        held = self._hold(subject)
        if admission.failure_id is None:
            self._take_unreserved(held)
            _ADD_SETTLED.queue(
                self._c, {"p_subject": subject, "p_at": admission.admitted_at, "p_now": now}
            )
            newest = None
        else:  # settled, and the failures that decide the lock read after it, together
            settled, newest = run_together(
                self._c,
                (_CONFIRM, {"p_failure": admission.failure_id, "p_now": now}),
                (_NEWEST_SETTLED, _newest_params(subject, policy)),
            )
            if settled.rowcount != 1:  # settled meanwhile as abandoned (or pruned after that)
                return None
        if held.settled is not None:
            held.settled += 1
        return self._lock_if_due(subject, held, policy, newest)

    def withdraw(self, subject: str, admission: Admitted) -> None:
        held = self._hold(subject)
        if admission.failure_id is None:
            self._take_unreserved(held)
            return
        _WITHDRAW.queue(self._c, {"p_failure": admission.failure_id})

    def hold(self, subject: str) -> None:
        self._hold(subject)

    def reset(self, subject: str) -> None:
        held = self._hold(subject)
        # Only settled failures: a guess still being evaluated is settled by its own request
        # after this success, and counts in the new run if it was wrong (R3.4, R3.5).
        if held.settled != 0:
            _DELETE_SETTLED.queue(self._c, {"p_subject": subject})
            held.settled = 0
        if held.locked_until is not None or not held.lock_known:
            _CLEAR_LOCK.queue(self._c, {"p_subject": subject})
            held.locked_until, held.lock_known = None, True

    def refuse_unsettled(self) -> None:
        """The unit of work calls this before it commits: an admission without a pending
        row that was neither confirmed nor withdrawn would leave its guess uncounted (R3.1),
        so such a transaction is refused (it rolls back) instead of committed."""
        if self._c.get_transaction() is self._held_in and any(
            held.unreserved for held in self._held.values()
        ):
            raise RuntimeError("an unreserved admission was not settled in its own transaction")

    def locked_until(self, subject: str, now: datetime) -> datetime | None:
        value = _LOCKED_UNTIL.run(self._c, {"p_subject": subject}).scalar()
        return value if value is not None and is_locked(value, now) else None

    def _tally(self, subject: str, start: datetime, now: datetime) -> _Tally:
        return _tally_of(_TALLY.run(self._c, _tally_params(subject, start, now)).one())

    def _lock_subject_and_tally(
        self, subject: str, start: datetime, now: datetime
    ) -> tuple[_Held, _Tally]:
        """Make the subject's row if missing, lock and read it, and tally its failures, in
        one round trip. The tally is a statement of its own after the lock's, so it counts
        every failure settled before the lock was had. (A row another transaction is making
        at the same moment: the insert waits for that transaction to end, then does
        nothing, and the lock follows.)"""
        _ENSURE_SUBJECT[self._c.dialect.name].queue(self._c, {"p_subject": subject})
        locked, counted = run_together(
            self._c,
            (_LOCK_SUBJECT, {"p_subject": subject}),
            (_TALLY, _tally_params(subject, start, now)),
        )
        return self._held_now(subject, locked.one().locked_until), _tally_of(counted.one())

    def _prune(self, subject: str, start: datetime, tally: _Tally, policy: LockoutPolicy) -> int:
        """Delete the failures older than ``start`` that no window still open needs: with
        attempts in flight, those since the window that ends at the oldest of them are kept
        (it locks if that attempt is wrong and makes the threshold). Returns how many
        settled failures before ``start`` were kept."""
        if tally.oldest_pending is None:
            _PRUNE.queue(self._c, {"p_subject": subject, "p_start": start})
            return 0
        # Never later than ``start``: a pending row stamped ahead of this clock (another
        # server's, a clock stepped back) must not prune failures of this window.
        keep_from = min(start, window_start(policy, tally.oldest_pending))
        before = _BEFORE_WINDOW.run(
            self._c, {"p_subject": subject, "p_start": start, "p_keep_from": keep_from}
        ).one()
        if before.unneeded:
            _PRUNE.queue(self._c, {"p_subject": subject, "p_start": keep_from})
        return int(before.needed)

    def _end_run(self, subject: str, held: _Held, last_failure_at: datetime) -> None:
        _END_RUN.queue(self._c, {"p_subject": subject, "p_last": last_failure_at})
        _CLEAR_LOCK.queue(self._c, {"p_subject": subject})
        held.locked_until, held.settled = None, None

    def _settle_abandoned(
        self, subject: str, held: _Held, now: datetime, policy: LockoutPolicy
    ) -> datetime | None:
        """Count pending rows of dead processes as failures; the lock end if that locks."""
        _SETTLE_ABANDONED.queue(
            self._c,
            {"p_subject": subject, "p_now": now, "p_before": now - PENDING_GRACE},
        )
        held.settled = None
        lock = self._lock_if_due(subject, held, policy)
        return lock if lock is not None and is_locked(lock, now) else None

    def _lock_if_due(
        self, subject: str, held: _Held, policy: LockoutPolicy, newest: Result | None = None
    ) -> datetime | None:
        """R3.2: lock when the newest settled failure is the threshold-th settled one within
        the window that ends at it (whatever order concurrent attempts settled in).

        Read from the newest ``threshold`` settled failures (``newest``, when read already
        under this transaction's lock): ``threshold`` of them lie in that window exactly
        when the window holds ``threshold`` or more, so the count of those is decisive."""
        if newest is None:
            newest = _NEWEST_SETTLED.run(self._c, _newest_params(subject, policy))
        if not newest.rows:
            return None
        last = newest.rows[0]
        start = window_start(policy, last.failed_at)
        in_window = sum(1 for row in newest.rows if row.failed_at >= start)
        locks_until = lock_after_failure(policy, in_window, last.failed_at)
        if locks_until is not None:
            _SET_LOCK.queue(
                self._c,
                {"p_subject": subject, "p_until": locks_until, "p_failure": last.failure_id},
            )
            held.locked_until, held.lock_known = locks_until, True
        return locks_until

    @staticmethod
    def _take_unreserved(held: _Held) -> None:
        """An admission without a pending row is settled in the transaction that made it:
        after that transaction, another may have taken its place (R3.5)."""
        if held.unreserved < 1:
            raise RuntimeError("an unreserved admission settled outside its own transaction")
        held.unreserved -= 1

    def _hold(self, subject: str) -> _Held:
        """Lock the subject's row unless this transaction already holds it (a row lock lasts
        until the transaction ends, so taking it again would only cost a statement).

        Nothing here needs the row's values, so the lock is sent with the transaction's
        next statement (storage/prepared.py ``queue``): the server takes it before that
        statement runs, so whatever follows is read and written under it, as if it had
        been taken here. The row is made first if the subject was never seen."""
        if self._c.get_transaction() is self._held_in and subject in self._held:
            return self._held[subject]
        _ENSURE_SUBJECT[self._c.dialect.name].queue(self._c, {"p_subject": subject})
        _LOCK_SUBJECT.queue(self._c, {"p_subject": subject})
        held = self._held_now(subject, None)
        held.lock_known = False
        return held

    def _held_now(self, subject: str, locked_until: datetime | None) -> _Held:
        """What this transaction knows of a subject whose row it has just locked."""
        transaction = self._c.get_transaction()
        if transaction is not self._held_in:
            self._held, self._held_in = {}, transaction
        known = self._held.get(subject)
        unreserved = known.unreserved if known is not None else 0
        held = self._held[subject] = _Held(locked_until, unreserved=unreserved)
        return held


def _newest_params(subject: str, policy: LockoutPolicy) -> dict[str, object]:
    return {"p_subject": subject, "p_threshold": policy.threshold}


def _tally_params(subject: str, start: datetime, now: datetime) -> dict[str, object]:
    return {"p_subject": subject, "p_start": start, "p_before": now - PENDING_GRACE}


def _tally_of(row: Any) -> _Tally:
    return _Tally(
        int(row.settled),
        int(row.pending),
        int(row.stale),
        int(row.abandoned),
        row.oldest_pending,
    )
