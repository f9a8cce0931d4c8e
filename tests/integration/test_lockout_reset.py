"""R3.4 and R3.5 together: a success clears the settled run, never a guess in flight.

A wrong guess still being evaluated when the user's own login succeeds settles after the
success: it is the first failure of the new run, not a guess that was never counted.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from securelogin.bootstrap import Application
from securelogin.services.ports import Admitted
from securelogin.storage.tables import lockout_failures
from tests.clock import FakeClock


def failures_of(application: Application, subject: str) -> tuple[int, int]:
    """(settled, pending) failure rows of ``subject``."""
    with application.engine.connect() as connection:
        rows = connection.execute(
            select(lockout_failures.c.settled_at.is_(None), func.count())
            .where(lockout_failures.c.subject == subject)
            .group_by(lockout_failures.c.settled_at.is_(None))
        ).all()
    counts = {bool(pending): int(n) for pending, n in rows}
    return counts.get(False, 0), counts.get(True, 0)


def test_a_success_clears_the_settled_failures_but_not_a_guess_in_flight(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    policy = ctx.policies.lockout
    subject = "abcde123"

    with ctx.uow() as uow:
        earlier = uow.lockout.admit(subject, clock.now(), policy)
        uow.commit()
    with ctx.uow() as uow:
        assert isinstance(earlier, Admitted)
        uow.lockout.confirm(subject, earlier, clock.now(), policy)
        in_flight = uow.lockout.admit(subject, clock.now(), policy)  # a wrong guess, hashing
        right = uow.lockout.admit(subject, clock.now(), policy)  # the user's own login
        uow.commit()
    assert isinstance(in_flight, Admitted) and isinstance(right, Admitted)
    assert failures_of(application, subject) == (1, 2)

    clock.advance(timedelta(seconds=1))
    with ctx.uow() as uow:  # the user's login succeeds
        uow.lockout.withdraw(subject, right)
        uow.lockout.reset(subject)
        uow.commit()
    assert failures_of(application, subject) == (0, 1)

    with ctx.uow() as uow:  # the guess in flight turns out wrong
        assert uow.lockout.confirm(subject, in_flight, clock.now(), policy) is None
        uow.commit()
    assert failures_of(application, subject) == (1, 0)
