"""Counting attempts for the lockout (R3): every guess at a secret goes through here.

1. ``count_attempt`` admits one attempt, in its own committed transaction, *before* the
   guess is evaluated: refused when locked (nothing evaluated, nothing counted), told to
   wait while attempts in flight hold the last places, otherwise given a pending failure.
2. The guess is evaluated outside any transaction.
3. In the transaction that settles it: ``confirm_failure`` for a wrong guess (which may
   lock, R3.2), ``withdraw`` of the pending failure for a right one, or ``reset`` for a
   completed login (R3.4).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeVar

from securelogin.domain.audit import AuditEvent
from securelogin.domain.errors import AccountLockedError, TooManyRequestsError
from securelogin.services.context import Caller, Context
from securelogin.services.notifications import notify
from securelogin.services.ports import Admitted, Busy, Refused, UnitOfWork

T = TypeVar("T")


def _nothing(_uow: UnitOfWork) -> None:
    return None


BUSY_WAIT_SECONDS = 10.0  # how long an attempt waits for those in flight before a 429
BUSY_POLL_SECONDS = 0.02


def count_attempt(ctx: Context, username: str, caller: Caller, action: str) -> Admitted:
    """Admit one attempt at ``username``'s secrets, or raise AccountLockedError."""
    admission, _ = count_attempt_reading(ctx, username, caller, action, _nothing)
    return admission


def count_attempt_reading(
    ctx: Context,
    username: str,
    caller: Caller,
    action: str,
    read: Callable[[UnitOfWork], T],
    *,
    read_ahead: Callable[[UnitOfWork], None] = _nothing,
) -> tuple[Admitted, T]:
    """``count_attempt``, and ``read`` in the committed transaction that admitted it (what
    the evaluation needs, such as the stored hash: one transaction fewer per login).
    ``read_ahead`` sends ``read``'s statement before the admission, with its first round
    trip (the repositories' ``read_ahead``); what it reads is used only if admitted."""
    waited = 0.0
    while True:
        admitted = _admit_once(ctx, username, caller, action, read, read_ahead)
        if not isinstance(admitted, Busy):
            return admitted
        waited = wait_for_attempts_in_flight(ctx, waited)


def wait_for_attempts_in_flight(ctx: Context, waited: float) -> float:
    """Pause before asking again (Busy); TooManyRequestsError after BUSY_WAIT_SECONDS."""
    if waited >= BUSY_WAIT_SECONDS:
        raise TooManyRequestsError(retry_after_seconds=1)
    pause = BUSY_POLL_SECONDS * (1 + random.random())  # noqa: S311 - jitter, not a secret
    ctx.pause(pause)
    return waited + pause


def refuse_locked(
    uow: UnitOfWork, now: datetime, username: str, caller: Caller, action: str, refused: Refused
) -> None:
    """Audit a refusal because the subject is locked (and the lock, if this admission set
    it); the caller commits, then raises AccountLockedError."""
    if refused.newly_locked:  # a dead process's pending failures made the count
        _record_lock(uow, now, username, caller, refused.locked_until)
    audit(uow, now, username, caller, action, "account_locked")


def _admit_once(
    ctx: Context,
    username: str,
    caller: Caller,
    action: str,
    read: Callable[[UnitOfWork], T],
    read_ahead: Callable[[UnitOfWork], None],
) -> tuple[Admitted, T] | Busy:
    now = ctx.clock.now()
    with ctx.uow() as uow:
        read_ahead(uow)
        admission = uow.lockout.admit(username, now, ctx.policies.lockout)
        if isinstance(admission, Busy):
            return admission
        if isinstance(admission, Refused):
            refuse_locked(uow, now, username, caller, action, admission)
            uow.commit()
            raise AccountLockedError(admission.locked_until)
        found = read(uow)
        audit(uow, now, username, caller, "attempt.counted", "pending", {"for": action})
        uow.commit()
    return admission.committed(), found


def confirm_failure(
    ctx: Context, uow: UnitOfWork, username: str, admission: Admitted, caller: Caller
) -> None:
    """The guess was wrong: settle its failure; audit and tell the user if that locks."""
    now = ctx.clock.now()
    locks_until = uow.lockout.confirm(username, admission, now, ctx.policies.lockout)
    if locks_until is not None:
        _record_lock(uow, now, username, caller, locks_until)


def _record_lock(
    uow: UnitOfWork, now: datetime, username: str, caller: Caller, locks_until: datetime
) -> None:
    """The lock was just set: audit it and tell the user (R6.7, R9)."""
    audit(
        uow,
        now,
        username,
        caller,
        "account.locked",
        "locked",
        {"locked_until": locks_until.isoformat()},
    )
    user = uow.users.get(username)
    if user is not None:  # R6.7; nothing tells the caller whether this ran
        notify(uow, user, "account_locked", now, f"{locks_until:%Y-%m-%d %H:%M} UTC")


def audit(
    uow: UnitOfWork,
    now: datetime,
    username: str | None,
    caller: Caller,
    action: str,
    outcome: str,
    details: Mapping[str, object] | None = None,
) -> None:
    """Append one audit record (R9.1) in the caller's transaction."""
    uow.audit.append(
        AuditEvent(
            at=now,
            actor=caller.actor,
            action=action,
            subject=username,
            outcome=outcome,
            source=caller.source,
            details=details or {},
        )
    )
