"""R3.5 for a guess checked inside the transaction that admits it (step two).

``admit(reserve=False)`` writes no pending failure: the transaction holds the subject's
lock from the admission to the settlement, so nobody can take the place in between. The
rules are otherwise the same: pending failures of others still hold places (Busy), a
wrong answer is a settled failure at the admission time, and a success leaves no row.
An unreserved admission settled in any other transaction is refused loudly.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from securelogin.bootstrap import Application
from securelogin.domain.lockout import LockoutPolicy
from securelogin.services.ports import Admitted, Busy, UnitOfWork
from securelogin.storage.tables import lockout_failures
from tests.clock import FakeClock

SUBJECT = "abcde123"


def failure_rows(application: Application) -> list[tuple[object, object]]:
    with application.engine.connect() as connection:
        rows = connection.execute(
            select(lockout_failures.c.failed_at, lockout_failures.c.settled_at).where(
                lockout_failures.c.subject == SUBJECT
            )
        ).all()
    return [(failed, settled) for failed, settled in rows]


def settle_wrong_answers(uow: UnitOfWork, clock: FakeClock, policy: LockoutPolicy, n: int) -> None:
    """``n`` wrong answers, each admitted with a pending row and settled as a failure."""
    for _ in range(n):
        settled = uow.lockout.admit(SUBJECT, clock.now(), policy)
        assert isinstance(settled, Admitted)
        uow.lockout.confirm(SUBJECT, settled, clock.now(), policy)


def test_a_wrong_answer_checked_in_its_transaction_is_one_settled_failure(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    admitted_at = clock.now()
    with ctx.uow() as uow:
        admission = uow.lockout.admit(SUBJECT, admitted_at, ctx.policies.lockout, reserve=False)
        assert isinstance(admission, Admitted) and admission.failure_id is None
        settled_at = clock.advance(timedelta(milliseconds=5))
        assert uow.lockout.confirm(SUBJECT, admission, settled_at, ctx.policies.lockout) is None
        uow.commit()
    assert failure_rows(application) == [(admitted_at, settled_at)]


def test_a_right_answer_checked_in_its_transaction_leaves_no_row(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    with ctx.uow() as uow:
        admission = uow.lockout.admit(SUBJECT, clock.now(), ctx.policies.lockout, reserve=False)
        assert isinstance(admission, Admitted)
        uow.lockout.withdraw(SUBJECT, admission)
        uow.lockout.reset(SUBJECT)
        uow.commit()
    assert failure_rows(application) == []


def test_guesses_of_others_in_flight_still_hold_the_last_places(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    policy = ctx.policies.lockout
    with ctx.uow() as uow:  # nine wrong answers settled, one password being hashed
        settle_wrong_answers(uow, clock, policy, policy.threshold - 1)
        assert isinstance(uow.lockout.admit(SUBJECT, clock.now(), policy), Admitted)
        uow.commit()
    with ctx.uow() as uow:
        assert isinstance(uow.lockout.admit(SUBJECT, clock.now(), policy, reserve=False), Busy)


def test_unreserved_admissions_of_one_transaction_hold_places_too(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    policy = ctx.policies.lockout
    with ctx.uow() as uow:  # nine wrong answers settled
        settle_wrong_answers(uow, clock, policy, policy.threshold - 1)
        uow.commit()
    with ctx.uow() as uow:  # the last place, taken without a row: a second is refused
        first = uow.lockout.admit(SUBJECT, clock.now(), policy, reserve=False)
        assert isinstance(first, Admitted)
        assert isinstance(uow.lockout.admit(SUBJECT, clock.now(), policy, reserve=False), Busy)
        uow.lockout.withdraw(SUBJECT, first)
        assert isinstance(uow.lockout.admit(SUBJECT, clock.now(), policy, reserve=False), Admitted)


def test_the_tenth_wrong_answer_checked_in_its_transaction_locks(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    policy = ctx.policies.lockout
    locks = []
    for _ in range(policy.threshold):
        with ctx.uow() as uow:
            admission = uow.lockout.admit(SUBJECT, clock.now(), policy, reserve=False)
            assert isinstance(admission, Admitted)
            locks.append(uow.lockout.confirm(SUBJECT, admission, clock.now(), policy))
            uow.commit()
        clock.advance(timedelta(seconds=1))
    assert locks[:-1] == [None] * (policy.threshold - 1)
    assert locks[-1] == clock.now() - timedelta(seconds=1) + policy.duration
    with ctx.uow() as uow:
        assert uow.lockout.locked_until(SUBJECT, clock.now()) == locks[-1]


def test_an_unreserved_admission_cannot_be_settled_in_another_transaction(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    with ctx.uow() as uow:  # ends without settling it (rolled back: it cannot commit)
        admission = uow.lockout.admit(SUBJECT, clock.now(), ctx.policies.lockout, reserve=False)
    assert isinstance(admission, Admitted)
    assert failure_rows(application) == []  # it kept no place: nothing was written for it
    with ctx.uow() as uow, pytest.raises(RuntimeError, match="outside its own transaction"):
        uow.lockout.confirm(SUBJECT, admission, clock.now(), ctx.policies.lockout)
    with ctx.uow() as uow, pytest.raises(RuntimeError, match="outside its own transaction"):
        uow.lockout.withdraw(SUBJECT, admission)


def test_a_transaction_with_an_unsettled_unreserved_admission_cannot_commit(
    application: Application, clock: FakeClock
) -> None:
    ctx = application.context
    with ctx.uow() as uow, pytest.raises(RuntimeError, match="not settled in its own"):
        admission = uow.lockout.admit(SUBJECT, clock.now(), ctx.policies.lockout, reserve=False)
        assert isinstance(admission, Admitted)
        taken = uow.logins.take_after_next("no-such-login", clock.now())  # whatever else
        assert uow.logins.peek("no-such-login", clock.now()) is None  # it did (it carries
        assert not taken()  # the take on PostgreSQL, which cannot be read before)
        uow.commit()
    assert failure_rows(application) == []
    with ctx.uow() as uow:  # settled in its own transaction, it commits
        admission = uow.lockout.admit(SUBJECT, clock.now(), ctx.policies.lockout, reserve=False)
        assert isinstance(admission, Admitted)
        uow.lockout.confirm(SUBJECT, admission, clock.now(), ctx.policies.lockout)
        uow.commit()
    assert len(failure_rows(application)) == 1
