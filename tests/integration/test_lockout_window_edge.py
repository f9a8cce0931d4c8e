"""R3.2 and R3.5 at the edge of the 24 hours: a guess in flight keeps its own window.

Nine failures, then a guess admitted a moment before the 24 hours since the first of them
run out: if it is wrong, it is the tenth within 24 hours and locks. Attempts that arrive
while it is evaluated, once the first nine have left their own window, must neither prune
the nine nor be evaluated beside it; and a guess whose process died counts in the window it
was made in, before anything is pruned.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from securelogin.bootstrap import Application
from securelogin.domain.lockout import LockoutPolicy
from securelogin.services.ports import Admitted, Busy, Refused, UnitOfWork
from securelogin.storage.tables import lockout_failures
from tests.clock import FakeClock

SUBJECT = "abcde123"
SECOND = timedelta(seconds=1)
DAY = timedelta(hours=24)


def admit(application: Application, now: datetime) -> Admitted | Refused | Busy:
    ctx = application.context
    with ctx.uow() as uow:
        admission = uow.lockout.admit(SUBJECT, now, ctx.policies.lockout)
        uow.commit()
    return admission


def wrong(uow: UnitOfWork, admission: Admitted, now: datetime, policy: LockoutPolicy) -> object:
    return uow.lockout.confirm(SUBJECT, admission, now, policy)


def fail(application: Application, now: datetime, n: int) -> None:
    """``n`` wrong guesses at ``now``, each admitted and settled."""
    ctx = application.context
    for _ in range(n):
        with ctx.uow() as uow:
            admission = uow.lockout.admit(SUBJECT, now, ctx.policies.lockout)
            assert isinstance(admission, Admitted)
            assert wrong(uow, admission, now, ctx.policies.lockout) is None
            uow.commit()


def failure_times(application: Application) -> list[datetime]:
    with application.engine.connect() as connection:
        return sorted(
            connection.execute(
                select(lockout_failures.c.failed_at).where(lockout_failures.c.subject == SUBJECT)
            ).scalars()
        )


def test_a_guess_in_flight_at_the_edge_keeps_the_nine_it_would_lock_with(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    policy = ctx.policies.lockout
    t0 = clock.now()
    fail(application, t0, 9)

    in_flight = admit(application, t0 + DAY - SECOND)  # the tenth within 24 hours, hashing
    assert isinstance(in_flight, Admitted)
    # The nine are out of a new attempt's own window now, but not out of the guess's:
    assert isinstance(admit(application, t0 + DAY + SECOND), Busy)  # never evaluated beside it
    assert len(failure_times(application)) == 10  # nothing it needs was pruned

    settled_at = t0 + DAY + 2 * SECOND
    with ctx.uow() as uow:  # the guess in flight was wrong
        locked_until = wrong(uow, in_flight, settled_at, policy)
        uow.commit()
    assert locked_until == in_flight.admitted_at + policy.duration

    refused = admit(application, t0 + DAY + 3 * SECOND)
    assert isinstance(refused, Refused) and refused.locked_until == locked_until


def test_a_guess_in_flight_at_the_edge_that_was_right_lets_the_next_one_in(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    t0 = clock.now()
    fail(application, t0, 9)
    in_flight = admit(application, t0 + DAY - SECOND)
    assert isinstance(in_flight, Admitted)
    assert isinstance(admit(application, t0 + DAY + SECOND), Busy)

    with ctx.uow() as uow:  # the guess in flight was right: its count is withdrawn
        uow.lockout.withdraw(SUBJECT, in_flight)
        uow.commit()
    later = admit(application, t0 + DAY + 2 * SECOND)
    assert isinstance(later, Admitted)  # the nine have left every window still open
    assert failure_times(application) == [later.admitted_at]  # and are pruned


def test_only_failures_that_no_guess_in_flight_needs_are_pruned(
    application: Application, clock: FakeClock
) -> None:
    t0 = clock.now()
    fail(application, t0 - timedelta(hours=2), 1)  # before the guess's window: not needed
    fail(application, t0, 8)
    in_flight = admit(application, t0 + DAY - SECOND)
    assert isinstance(in_flight, Admitted)

    # 8 failures the guess still needs, and the guess: a place is left for one more
    another = admit(application, t0 + DAY + SECOND)
    assert isinstance(another, Admitted)
    assert failure_times(application) == [t0] * 8 + [in_flight.admitted_at, another.admitted_at]


def test_a_guess_whose_process_died_counts_in_its_own_window_before_any_pruning(
    application: Application, clock: FakeClock
) -> None:
    policy = application.context.policies.lockout
    t0 = clock.now()
    fail(application, t0, 9)
    died = admit(application, t0 + timedelta(hours=23))  # its process is killed while hashing
    assert isinstance(died, Admitted)

    # Two hours later the nine are out of a new attempt's window; the dead guess is the
    # tenth within 24 hours of them, so the next attempt, even a right one, is refused.
    refused = admit(application, t0 + timedelta(hours=25))
    assert isinstance(refused, Refused) and refused.newly_locked
    assert refused.locked_until == died.admitted_at + policy.duration
