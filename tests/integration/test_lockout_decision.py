"""R3.2's decision, as storage/lockout.py makes it when a failure is settled.

The lock is set when the newest settled failure is the threshold-th settled one within the
window that ends at it. It is decided from the newest ``threshold`` settled failures, read
in the round trip that settles this one: ``threshold`` of them lie in that window exactly
when the window holds ``threshold`` or more. Proven here on states written straight into
the table (some of which only a guess in flight at the window's edge leaves behind: failures
older than the window of the newest, kept because that guess still needed them), for
thresholds 1 and 3, failures at the same instant, and more failures than the threshold,
on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from securelogin.bootstrap import Application
from securelogin.domain.lockout import LockoutPolicy
from securelogin.services.attempts import count_attempt
from securelogin.services.context import Caller
from securelogin.services.ports import Admitted
from securelogin.storage.tables import lockout_failures, lockout_subjects

SUBJECT = "abcde123"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    ("threshold", "settled_ago", "locks"),
    [
        pytest.param(1, [], True, id="threshold 1: the first failure locks"),
        pytest.param(3, [2 * HOUR, HOUR], True, id="the third within the window"),
        pytest.param(3, [25 * HOUR, HOUR], False, id="one of three before the window"),
        pytest.param(3, [0 * HOUR, 0 * HOUR], True, id="three at the same instant"),
        pytest.param(3, [5 * HOUR, 4 * HOUR, 3 * HOUR, 2 * HOUR], True, id="more than three"),
        pytest.param(
            3, [30 * HOUR, 26 * HOUR, 25 * HOUR, HOUR], False, id="the newest three straddle"
        ),
        pytest.param(
            3, [30 * HOUR, 26 * HOUR, 23 * HOUR, HOUR], True, id="older ones beyond the three"
        ),
    ],
)
def test_the_failure_that_makes_the_threshold_in_its_window_locks(
    application: Application, threshold: int, settled_ago: list[timedelta], locks: bool
) -> None:
    policy = LockoutPolicy(threshold=threshold)
    with application.engine.begin() as connection:
        connection.execute(insert(lockout_subjects).values(subject=SUBJECT, locked_until=None))
        for ago in settled_ago:
            connection.execute(
                insert(lockout_failures).values(
                    subject=SUBJECT, failed_at=NOW - ago, settled_at=NOW - ago
                )
            )
        pending = connection.execute(
            insert(lockout_failures)
            .values(subject=SUBJECT, failed_at=NOW, settled_at=None)
            .returning(lockout_failures.c.failure_id)
        ).scalar_one()
    with application.context.uow() as uow:
        until = uow.lockout.confirm(SUBJECT, Admitted(NOW, pending), NOW, policy)
        uow.commit()
    assert until == (NOW + policy.duration if locks else None)
    with application.context.uow() as uow:
        assert uow.lockout.locked_until(SUBJECT, NOW) == until


def test_an_admission_returns_with_its_pending_failure_read(application: Application) -> None:
    """What count_attempt returns holds the pending row's id, nothing of its transaction."""
    admission = count_attempt(application.context, SUBJECT, Caller(), "login.password")
    assert isinstance(admission.reserved, int)
    with application.engine.connect() as connection:
        ids = connection.execute(lockout_failures.select()).all()
    assert [row.failure_id for row in ids] == [admission.failure_id]
