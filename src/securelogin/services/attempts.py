"""Counting attempts for the lockout (R3): every guess at a secret goes through here.

``count_attempt`` admits one attempt, in its own committed transaction, *before* the
guess is evaluated: refused when locked (nothing evaluated, nothing counted), otherwise
already counted as a failure. ``settle_right`` then withdraws the count of a right guess,
or, for a completed login, resets the run (R3.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from securelogin.domain.audit import AuditEvent
from securelogin.domain.errors import AccountLockedError
from securelogin.services.context import Caller, Context
from securelogin.services.ports import Admitted, Refused, UnitOfWork


def count_attempt(ctx: Context, username: str, caller: Caller, action: str) -> Admitted:
    """Admit and count one attempt at ``username``'s secrets, or raise AccountLockedError."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        admission = uow.lockout.admit(username, now, ctx.policies.lockout)
        if isinstance(admission, Refused):
            audit(uow, now, username, caller, action, "account_locked")
            uow.commit()
            raise AccountLockedError(admission.locked_until)
        audit(uow, now, username, caller, "attempt.counted", "counted", {"for": action})
        if admission.locks_until is not None:
            audit(
                uow,
                now,
                username,
                caller,
                "account.locked",
                "locked",
                {"locked_until": admission.locks_until.isoformat()},
            )
        uow.commit()
    return admission


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
