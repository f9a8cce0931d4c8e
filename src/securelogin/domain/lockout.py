"""Lockout (R3): the policy and the pure decisions.

The counting itself happens in the database, atomically (storage: LockoutRepository.admit):
an attempt is *counted as failed when it is admitted for evaluation*, in the same
transaction that decides whether it may be evaluated at all. A correct password then
withdraws its own count; a successful login resets the run. So a crash between evaluating
and answering can never lose a count, and at most ``threshold`` wrong attempts are ever
evaluated, whatever the concurrency (R3.5). docs/security.md explains the trade-offs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LockoutPolicy:
    """R3.2/R3.3 defaults: 10 consecutive failures within 24 h lock for 24 h after the last."""

    threshold: int = 10  # R3.2: 10 consecutive failed attempts
    window: timedelta = timedelta(hours=24)  # R3.2: first and last within 24 hours
    duration: timedelta = timedelta(hours=24)  # R3.3: until 24 hours after the last failure

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("lockout threshold must be at least 1")


def is_locked(locked_until: datetime | None, now: datetime) -> bool:
    """R3.3: locked while ``now`` is before ``locked_until``."""
    return locked_until is not None and now < locked_until


def window_start(policy: LockoutPolicy, now: datetime) -> datetime:
    """The earliest failure that still lies within the window of one ending ``now``."""
    return now - policy.window


def lock_after_failure(
    policy: LockoutPolicy, failures_in_window: int, now: datetime
) -> datetime | None:
    """R3.2: the lock end if the failure at ``now`` makes ``threshold`` in the window.

    ``failures_in_window`` counts the consecutive failures (since the last successful
    login) at or after ``window_start(policy, now)``, this one included.
    """
    if failures_in_window >= policy.threshold:
        return now + policy.duration
    return None
