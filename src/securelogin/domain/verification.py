"""Identity verification by Client Services (R8.2)."""

from __future__ import annotations

from datetime import datetime, timedelta

VERIFICATION_TTL = timedelta(minutes=15)  # R8.2: a pass authorises for 15 minutes
FAILURE_LIMIT = 3  # R8.2: 3 failed verifications within 24 hours...
FAILURE_WINDOW = timedelta(hours=24)
PHONE_LOCK = timedelta(hours=24)  # ...lock phone support for 24 hours
# Our choice (docs/recovery.md): an unanswered verification's question is asked again for
# as long as a failure would count, so hanging up cannot draw another question.
QUESTION_KEPT = FAILURE_WINDOW
RESET_CODE_TTL = timedelta(hours=24)  # R8.3: a password-reset code is valid 24 hours
RESET_CODE_LENGTH = 12  # our choice: 60 bits from the passcode alphabet


def phone_lock_until(failures: list[datetime], now: datetime) -> datetime | None:
    """R8.2: the end of a phone-support lock, if any 3 failures within 24 hours make one
    that lasts past ``now`` (24 hours after the third of them)."""
    times = sorted(failures)
    ends = [
        times[i + FAILURE_LIMIT - 1] + PHONE_LOCK
        for i in range(len(times) - FAILURE_LIMIT + 1)
        if times[i + FAILURE_LIMIT - 1] - times[i] <= FAILURE_WINDOW
    ]
    until = max(ends, default=None)
    return until if until is not None and now < until else None


def is_verification_live(passed_at: datetime | None, now: datetime) -> bool:
    return passed_at is not None and now < passed_at + VERIFICATION_TTL
