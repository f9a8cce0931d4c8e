"""Logging in (R4.2), step two: one response to one of the offered factors.

check form (not counted, the attempt stays open)      R3.6
  -> take the attempt (single use) and count the guess  R4.2, R3.1
  -> check the response (claims a TOTP step atomically) R5
  -> right: reset the run, open the session             R3.4, R4.5
     wrong: keep the count, login_failed                R3.1
"""

from __future__ import annotations

from securelogin.domain.errors import (
    LoginExpiredError,
    LoginFailedError,
    PlatformNotPermittedError,
)
from securelogin.domain.login import FactorKind, LoginAttempt, OfferedFactor
from securelogin.domain.responses import form_problem
from securelogin.domain.sessions import Access
from securelogin.services.attempts import audit, confirm_failure, count_attempt
from securelogin.services.context import Caller, Context
from securelogin.services.factor_checks import FORMS, is_right_device_response
from securelogin.services.login import LoggedIn
from securelogin.services.ports import Admitted, UnitOfWork
from securelogin.services.sessions import open_session
from securelogin.services.temporary_credentials import check_temporary_response


def open_attempt(ctx: Context, login_id: str) -> LoginAttempt | None:
    """The login attempt awaiting its response, to show its factors (None if not open)."""
    if not login_id or len(login_id) > 128:
        return None
    with ctx.uow() as uow:
        return uow.logins.peek(login_id, ctx.clock.now())


def answer_second_factor(
    ctx: Context, *, login_id: str, factor_id: str, response: str, caller: Caller
) -> LoggedIn:
    """Step two. Raises LoginExpiredError, LoginFailedError, AccountLockedError."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        attempt = uow.logins.peek(login_id, now)
    if attempt is None:
        raise LoginExpiredError()
    factor = next((f for f in attempt.factors if f.factor_id == factor_id), None)
    if factor is not None:
        hint = form_problem(FORMS[factor.kind], response)
        if hint:
            raise LoginFailedError(hint=hint)  # R3.6: it can never be right; not counted
    _take(ctx, attempt, caller)
    admission = count_attempt(ctx, attempt.username, caller, "login.second_factor")
    return _settle(ctx, attempt, admission, factor, response, caller)


def _take(ctx: Context, attempt: LoginAttempt, caller: Caller) -> None:
    """R4.2: one response per login attempt; whoever takes it first answers it."""
    with ctx.uow() as uow:
        if uow.logins.take(attempt.login_id, ctx.clock.now()) is None:
            raise LoginExpiredError()
        uow.commit()


def _settle(
    ctx: Context,
    attempt: LoginAttempt,
    admission: Admitted,
    factor: OfferedFactor | None,
    response: str,
    caller: Caller,
) -> LoggedIn:
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.lockout.hold(attempt.username)  # lock order: subject, devices, audit head
        details = {"kind": factor.kind if factor else None, "platform": attempt.platform}
        try:
            access = _access_if_right(ctx, uow, attempt, factor, response)
        except PlatformNotPermittedError as refusal:  # right, but not at this door (R6.3)
            uow.lockout.withdraw(attempt.username, admission.failure_id)
            audit(uow, now, attempt.username, caller, "login.second_factor", refusal.code, details)
            uow.commit()
            raise
        if factor is None or access is None:
            confirm_failure(ctx, uow, attempt.username, admission, caller)
            audit(
                uow, now, attempt.username, caller, "login.second_factor", "login_failed", details
            )
            uow.commit()
            raise LoginFailedError()
        # Locks in one order everywhere: the subject's lockout row, then the audit head.
        uow.lockout.withdraw(attempt.username, admission.failure_id)
        uow.lockout.reset(attempt.username)  # R3.4: every required factor passed
        audit(uow, now, attempt.username, caller, "login.second_factor", "ok", details)
        session = open_session(
            ctx,
            uow,
            user_id=attempt.user_id,
            username=attempt.username,
            platform=attempt.platform,
            access=access,
            factor_kind=factor.kind,
            credential_ref=factor.credential_id,
            caller=caller,
        )
        uow.commit()
    return LoggedIn(session)


def _access_if_right(
    ctx: Context,
    uow: UnitOfWork,
    attempt: LoginAttempt,
    factor: OfferedFactor | None,
    response: str,
) -> Access | None:
    now = ctx.clock.now()
    if factor is None:
        return None
    if factor.kind in (FactorKind.TEMPORARY_PASSCODE, FactorKind.ONLINE_CARD):
        return check_temporary_response(
            ctx, uow, attempt.user_id, factor, response, attempt.platform, now
        )
    right = is_right_device_response(
        ctx,
        uow,
        factor.credential_id,
        code=factor.challenge_code,
        indices=factor.challenge_indices,
        response=response,
        now=now,
    )
    return Access.FULL if right else None
