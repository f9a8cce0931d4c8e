"""Logging in (R2, R3, R4), step one: username and password.

Step one, in two short transactions (1 and 3), so that no hash is computed while a lock is
held (but for the rare case in 3):

1. **admit** (attempts.count_attempt_reading, committed): refuse if locked (nothing
   evaluated, nothing counted, R3.3); otherwise count this attempt as a failure now, and
   read the user's stored hash in the same transaction. Committing before evaluating
   means a crash never loses a count.
2. **evaluate**: argon2id verify, or a dummy verify for an unknown username (R2.3, R3.8).
3. **settle**: a wrong password keeps its count and is refused with
   ``invalid_credentials``. A right one is held against the user's hash as it is now,
   under the subject's lock: if the hash changed during the evaluation, the password is
   checked again against the new one (the one hash ever computed under a lock, and only
   then): a reset made it wrong, another login's re-hash of it did not. Then it withdraws
   its count and either opens a session (password only, R4.3) or starts a login attempt
   awaiting a second factor (R4.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from securelogin.domain import usernames
from securelogin.domain.accounts import User
from securelogin.domain.errors import (
    InvalidCredentialsError,
    NoUsableSecondFactorError,
    PlatformNotPermittedError,
)
from securelogin.domain.login import LoginAttempt, OfferedFactor, attempt_expiry
from securelogin.domain.sessions import Access, Platform
from securelogin.domain.tokens import encode_token
from securelogin.services.attempts import audit, confirm_failure, count_attempt_reading
from securelogin.services.context import Caller, Context
from securelogin.services.ports import Admitted
from securelogin.services.second_factors import plan_second_factor
from securelogin.services.sessions import SessionView, open_session

LOGIN_ID_PREFIX = "lgn_"


@dataclass(frozen=True)
class SecondFactorNeeded:
    """Step one passed; the client picks one of ``factors`` and answers it."""

    login_id: str
    expires_at: datetime
    factors: tuple[OfferedFactor, ...]


@dataclass(frozen=True)
class LoggedIn:
    """The login is complete."""

    session: SessionView


def start_login(
    ctx: Context, *, username: str, password: str, platform: Platform, caller: Caller
) -> SecondFactorNeeded | LoggedIn:
    """Step one of R4.1. Raises BadCharacterError, AccountLockedError, InvalidCredentialsError."""
    usernames.screen_login_username(username)  # R1.3: not an attempt, nothing counted
    admission, user = count_attempt_reading(
        ctx,
        username,
        caller,
        "login.password",
        lambda uow: uow.users.get(username),
        read_ahead=lambda uow: uow.users.read_ahead(username),  # with the lock and tally
    )
    if user is None:
        ctx.hasher.verify_dummy(password)  # R2.3: the same time as a real verify
        right = False
    else:
        right = ctx.hasher.verify(user.password_hash, password)
    if user is None or not right:
        _settle_wrong_password(ctx, username, admission, caller)
        raise InvalidCredentialsError(hint=usernames.caps_lock_hint(username))
    new_hash = ctx.hasher.hash(password) if ctx.hasher.needs_rehash(user.password_hash) else None
    return _settle_right_password(ctx, user, password, admission, new_hash, platform, caller)


def _settle_wrong_password(
    ctx: Context, username: str, admission: Admitted, caller: Caller
) -> None:
    with ctx.uow() as uow:
        confirm_failure(ctx, uow, username, admission, caller)
        audit(uow, ctx.clock.now(), username, caller, "login.password", "invalid_credentials")
        uow.commit()


def _settle_right_password(
    ctx: Context,
    user: User,
    password: str,
    admission: Admitted,
    new_hash: str | None,
    platform: Platform,
    caller: Caller,
) -> SecondFactorNeeded | LoggedIn:
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.lockout.hold(user.username)  # a password reset holds it too: one after the other
        uow.devices.read_ahead_for_user(user.user_id)  # the plan's, with the next read
        current = uow.users.get(user.username)
        if current is None or current.password_hash != user.password_hash:
            # Changed while the password was checked: by a reset (the password is wrong
            # now) or by another login's re-hash of this same password (still right).
            if current is None or not ctx.hasher.verify(current.password_hash, password):
                confirm_failure(ctx, uow, user.username, admission, caller)
                audit(uow, now, user.username, caller, "login.password", "invalid_credentials")
                uow.commit()
                raise InvalidCredentialsError(hint=usernames.caps_lock_hint(user.username))
            new_hash = None  # the hash was just written, with today's parameters
        uow.lockout.withdraw(user.username, admission)
        if new_hash is not None:  # R2.1: re-hash with today's parameters
            uow.users.set_password_hash(user.user_id, new_hash)
        audit(uow, now, user.username, caller, "login.password", "ok", {"platform": platform})
        plan = plan_second_factor(ctx, uow, user, platform, now, caller)
        if plan.password_only:
            uow.lockout.reset(user.username)  # R3.4: a successful login resets the count
            session = open_session(
                ctx,
                uow,
                user_id=user.user_id,
                username=user.username,
                platform=platform,
                access=Access.FULL,
                factor_kind=None,
                credential_ref=None,
                caller=caller,
                not_after=plan.not_after,
            )
            uow.commit()
            return LoggedIn(session)
        if not plan.factors:
            refusal: PlatformNotPermittedError | NoUsableSecondFactorError = (
                PlatformNotPermittedError()
                if plan.platform_refused
                else NoUsableSecondFactorError()
            )
            audit(
                uow,
                now,
                user.username,
                caller,
                "login.second_factor",
                refusal.code,
                {"platform": platform},
            )
            uow.commit()
            raise refusal
        attempt = _new_attempt(ctx, user, platform, now, plan.factors)
        uow.logins.add(attempt)
        uow.commit()
    return SecondFactorNeeded(attempt.login_id, attempt.expires_at, attempt.factors)


def _new_attempt(
    ctx: Context,
    user: User,
    platform: Platform,
    now: datetime,
    factors: tuple[OfferedFactor, ...],
) -> LoginAttempt:
    login_id = encode_token(LOGIN_ID_PREFIX, ctx.random.token_bytes(32))
    return LoginAttempt(
        login_id, user.user_id, user.username, platform, now, attempt_expiry(now), factors
    )
