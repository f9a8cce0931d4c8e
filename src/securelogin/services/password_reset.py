"""Setting a new password with a one-time reset code from Client Services (R8.3).

The code is a guess at a secret like a password: it goes through the lockout (a wrong
code counts, R3.1), an unknown username costs the same time and is counted the same
(R3.8), and the reply never says which of username and code was wrong.
"""

from __future__ import annotations

from securelogin.domain import usernames
from securelogin.domain.errors import InvalidCredentialsError
from securelogin.domain.passwords import check_new_password
from securelogin.services.attempts import audit, confirm_failure, count_attempt
from securelogin.services.context import Caller, Context
from securelogin.services.notifications import notify

WRONG_CODE = "Invalid user name or reset code"


def reset_password(
    ctx: Context, *, username: str, reset_code: str, new_password: str, caller: Caller
) -> None:
    usernames.screen_login_username(username)
    check_new_password(ctx.policies.password, new_password, username)  # before counting
    admission = count_attempt(ctx, username, caller, "password.reset")
    with ctx.uow() as uow:
        user = uow.users.get(username)
        code = uow.reset_codes.newest_open(user.user_id, ctx.clock.now()) if user else None
    # One check whatever the user's history (R2.3, R3.8): a user has at most one open code.
    if code is None:
        matched = None
        ctx.hasher.verify_dummy(reset_code)  # the same time as a real check
    else:
        matched = code[0] if ctx.hasher.verify(code[1], reset_code) else None
    new_hash = ctx.hasher.hash(new_password) if matched else None
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.lockout.hold(username)  # lock order: subject, devices, audit head
        if (
            user is None
            or matched is None
            or new_hash is None
            or not uow.reset_codes.use(matched, now)
        ):
            confirm_failure(ctx, uow, username, admission, caller)
            audit(uow, now, username, caller, "password.reset", "invalid_credentials")
            uow.commit()
            raise InvalidCredentialsError(message=WRONG_CODE)
        uow.users.set_password_hash(user.user_id, new_hash)
        codes_ended = uow.reset_codes.end_open(user.user_id, now)  # none outlives a reset
        ended = uow.sessions.end_all(user.user_id, now)  # R8.3: a reset ends every session
        # ...and every login begun with the old password and waiting for its second factor
        uow.logins.end_all(user.user_id, now)
        uow.lockout.withdraw(username, admission)
        audit(
            uow,
            now,
            username,
            caller,
            "password.reset",
            "ok",
            {"sessions_ended": ended, "codes_ended": codes_ended},
        )
        notify(uow, user, "password_reset", now)
        uow.commit()
