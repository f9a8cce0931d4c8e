"""Logging in (R4.2), step two: one response to one of the offered factors.

In ONE transaction:
  -> read the open attempt                              R4.2
  -> check the form (malformed: not counted, the attempt stays open,   R3.6
     but refused account_locked while the user is locked)             R3.3
  -> admit the guess (the lockout's own admission)      R3.1, R3.3, R3.5
  -> take the attempt (single use)                      R4.2
  -> check the response (claims a TOTP step atomically) R5
     a temporary factor: self-activations due first     R5.4, R5.5
  -> right: reset the run, open the session             R3.4, R4.5
     (a temporary factor's ends with its window, or at  R6.3, R7.4
      the first self-activation still to come)          R5.5
     wrong: settle the failure, login_failed            R3.1, R3.2

The attempt is taken (``take_after_next``) and the device a response answers read
(``read_ahead``) with the admission's lock and tally, after them: on PostgreSQL in their
round trip, two fewer. The device is used only once the attempt is taken; an admission told
to wait (Busy) rolls the take back with everything else.

The response is checked inside the transaction that counts it, under the subject's lock,
so the admission keeps no pending row (``reserve=False``; a password, hashed outside any
transaction, must commit its admission first): a crash before the commit leaves no trace
and no answer, the attempt still open and the TOTP step unclaimed. The admission's rules
are the same calls as everywhere (``admit``, ``confirm``, ``withdraw``, ``reset``); when
attempts in flight hold the last places (Busy) the transaction is rolled back, the take
with it, and tried again. (On PostgreSQL the take runs after the admission's statements,
in their round trip; on SQLite, whose transactions are exclusive, before them.)
"""

from __future__ import annotations

from securelogin.domain.devices import first_auto_activation
from securelogin.domain.errors import (
    AccountLockedError,
    LoginExpiredError,
    LoginFailedError,
    PlatformNotPermittedError,
)
from securelogin.domain.login import FactorKind, LoginAttempt, OfferedFactor
from securelogin.domain.responses import form_problem
from securelogin.domain.sessions import Access, Grant
from securelogin.services.attempts import (
    audit,
    confirm_failure,
    refuse_locked,
    wait_for_attempts_in_flight,
)
from securelogin.services.context import Caller, Context
from securelogin.services.device_states import refresh_devices
from securelogin.services.factor_checks import FORMS, is_right_device_response
from securelogin.services.login import LoggedIn
from securelogin.services.ports import Admitted, Busy, Refused, UnitOfWork
from securelogin.services.sessions import open_session
from securelogin.services.temporary_credentials import check_temporary_response

TEMPORARY_FACTORS = frozenset({FactorKind.TEMPORARY_PASSCODE, FactorKind.ONLINE_CARD})
DEVICE_FACTORS = frozenset(FactorKind) - TEMPORARY_FACTORS  # is_right_device_response's


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
    waited = 0.0
    while True:
        outcome = _answer_once(ctx, login_id, factor_id, response, caller)
        if outcome is not None:
            return outcome
        waited = wait_for_attempts_in_flight(ctx, waited)


def _answer_once(
    ctx: Context, login_id: str, factor_id: str, response: str, caller: Caller
) -> LoggedIn | None:
    """The whole answer in one transaction; None (nothing done) when it must wait."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        attempt = uow.logins.peek(login_id, now)
        if attempt is None:
            raise LoginExpiredError()
        factor = next((f for f in attempt.factors if f.factor_id == factor_id), None)
        if factor is not None:
            hint = form_problem(FORMS[factor.kind], response)
            locked_until = uow.lockout.locked_until(attempt.username, now) if hint else None
            if locked_until is not None:  # R3.3 first: while locked, every attempt is refused
                audit(uow, now, attempt.username, caller, "login.second_factor", "account_locked")
                uow.commit()
                raise AccountLockedError(locked_until)
            if hint:  # R3.6: it can never be right, so not counted; but audited (R9.1)
                audit(
                    uow,
                    now,
                    attempt.username,
                    caller,
                    "login.second_factor",
                    "login_failed",
                    {"malformed": True},
                )
                uow.commit()
                raise LoginFailedError(hint=hint)
        # Lock order: the subject's lockout row (admit), the attempt, devices, audit head.
        # The attempt is taken, and the device its response answers read, after the
        # admission's lock and tally, in their round trip on PostgreSQL (two fewer); the
        # device is used only once the attempt is taken and the guess admitted.
        taken = uow.logins.take_after_next(attempt.login_id, now)
        if factor is not None and factor.kind in DEVICE_FACTORS:
            uow.devices.read_ahead(factor.credential_id)
        admission = uow.lockout.admit(attempt.username, now, ctx.policies.lockout, reserve=False)
        if isinstance(admission, Busy):
            return None  # rolled back: nothing admitted, nothing taken
        if not taken():  # R4.2: one response per attempt
            raise LoginExpiredError()  # rolled back: the guess was never admitted
        if isinstance(admission, Refused):  # R3.3: nothing evaluated; the attempt is used
            refuse_locked(uow, now, attempt.username, caller, "login.second_factor", admission)
            uow.commit()
            raise AccountLockedError(admission.locked_until)
        return _settle(ctx, uow, attempt, admission, factor, response, caller)


def _settle(
    ctx: Context,
    uow: UnitOfWork,
    attempt: LoginAttempt,
    admission: Admitted,
    factor: OfferedFactor | None,
    response: str,
    caller: Caller,
) -> LoggedIn:
    now = ctx.clock.now()
    details = {"kind": factor.kind if factor else None, "platform": attempt.platform}
    try:
        grant = _grant_if_right(ctx, uow, attempt, factor, response, caller)
    except PlatformNotPermittedError as refusal:  # right, but not at this door (R6.3)
        uow.lockout.withdraw(attempt.username, admission)
        audit(uow, now, attempt.username, caller, "login.second_factor", refusal.code, details)
        uow.commit()
        raise
    if factor is None or grant is None:
        confirm_failure(ctx, uow, attempt.username, admission, caller)
        audit(uow, now, attempt.username, caller, "login.second_factor", "login_failed", details)
        uow.commit()
        raise LoginFailedError()
    uow.lockout.withdraw(attempt.username, admission)
    uow.lockout.reset(attempt.username)  # R3.4: every required factor passed
    audit(uow, now, attempt.username, caller, "login.second_factor", "ok", details)
    session = open_session(
        ctx,
        uow,
        user_id=attempt.user_id,
        username=attempt.username,
        platform=attempt.platform,
        access=grant.access,
        factor_kind=factor.kind,
        credential_ref=factor.credential_id,
        caller=caller,
        not_after=grant.not_after,
    )
    uow.commit()
    return LoggedIn(session)


def _grant_if_right(
    ctx: Context,
    uow: UnitOfWork,
    attempt: LoginAttempt,
    factor: OfferedFactor | None,
    response: str,
    caller: Caller,
) -> Grant | None:
    now = ctx.clock.now()
    if factor is None:
        return None
    if factor.kind in TEMPORARY_FACTORS:
        return _temporary_grant(ctx, uow, attempt, factor, response, caller)
    right = is_right_device_response(
        ctx,
        uow,
        factor.credential_id,
        code=factor.challenge_code,
        indices=factor.challenge_indices,
        response=response,
        now=now,
    )
    return Grant(Access.FULL) if right else None


def _temporary_grant(
    ctx: Context,
    uow: UnitOfWork,
    attempt: LoginAttempt,
    factor: OfferedFactor,
    response: str,
    caller: Caller,
) -> Grant | None:
    """A temporary factor, checked once the self-activations due are applied (R5.4: one
    since step one has ended the credential, R5.5). Its session ends with the credential's
    window, or at the first self-activation still to come, whichever is first."""
    now = ctx.clock.now()
    user = uow.users.get_by_id(attempt.user_id)
    if user is None:
        return None
    devices = refresh_devices(ctx, uow, user, now, caller)
    grant = check_temporary_response(
        ctx, uow, attempt.user_id, factor, response, attempt.platform, now
    )
    return grant.ending_by(first_auto_activation(devices)) if grant else None
