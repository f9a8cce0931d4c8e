"""A login with the old password that straddles a password reset (R2.1, R8.3).

Step one checks the password outside any transaction. A reset that commits meanwhile makes
that password a wrong one: the login settles as a wrong password (counted), never opens a
session, and never writes its re-hash of the old password over the new one. A login whose
step one passed before the reset cannot be completed by its second factor afterwards.
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from securelogin.bootstrap import Application
from securelogin.domain import otp
from securelogin.domain.errors import InvalidCredentialsError, LoginExpiredError
from securelogin.domain.sessions import Platform
from securelogin.services import devices, helpdesk, login, login_response, password_reset
from securelogin.services.context import Caller, Context
from tests.clock import FakeClock
from tests.conftest import PASSWORD, make_user, readable

NEW_PASSWORD = "Brandnew9pass"
USER = Caller("user")


def log_in(
    ctx: Context, password: str = PASSWORD, platform: Platform = Platform.PORTAL
) -> login.SecondFactorNeeded | login.LoggedIn:
    """Step one for the test's user."""
    return login.start_login(
        ctx, username="abcde123", password=password, platform=platform, caller=USER
    )


def reset_code(application: Application) -> str:
    with application.context.uow() as uow:
        user = uow.users.get("abcde123")
    assert user is not None
    code, _ = helpdesk.give_reset_code(application.context, user, Caller("agent:1"))
    return code


class ResetWhileChecking:
    """The service's hasher, but the reset commits while the login's password is checked."""

    def __init__(self, application: Application, code: str, *, rehash: bool) -> None:
        self._real = application.context.hasher
        self._code = code
        self._rehash = rehash
        self.context: Context = dataclasses.replace(application.context, hasher=self)
        self.reset_done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def verify(self, stored_hash: str, secret: str) -> bool:
        right = bool(self._real.verify(stored_hash, secret))
        if secret == PASSWORD and not self.reset_done:
            self.reset_done = True
            password_reset.reset_password(
                self.context,
                username="abcde123",
                reset_code=self._code,
                new_password=NEW_PASSWORD,
                caller=USER,
            )
        return right

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._rehash  # as if the stored hash had older parameters (R2.1)


def open_sessions(application: Application) -> int:
    with application.context.uow() as uow:
        user = uow.users.get("abcde123")
        assert user is not None
        return len(uow.sessions.open_sessions(user.user_id, None))


@pytest.mark.parametrize("rehash", [False, True], ids=["same-parameters", "re-hashed"])
def test_a_reset_during_the_password_check_makes_it_a_wrong_password(
    application: Application, clock: FakeClock, rehash: bool
) -> None:
    make_user(application)
    racing = ResetWhileChecking(application, reset_code(application), rehash=rehash)

    with pytest.raises(InvalidCredentialsError):
        log_in(racing.context)
    assert racing.reset_done
    assert open_sessions(application) == 0  # the reset ended every session; none opened

    clock.advance(timedelta(seconds=1))
    ctx = application.context
    with pytest.raises(InvalidCredentialsError):  # the old password stays wrong
        log_in(ctx)
    outcome = log_in(ctx, NEW_PASSWORD)  # and the new one was not overwritten
    assert isinstance(outcome, login.LoggedIn)
    with ctx.uow() as uow:  # the straddling login was counted as the failure it became
        actions = [(r.event.action, r.event.outcome) for r in readable(uow.audit.records())]
    assert ("login.password", "invalid_credentials") in actions


def test_a_reset_ends_the_logins_waiting_for_their_second_factor(
    application: Application, clock: FakeClock
) -> None:
    make_user(application)
    ctx = application.context
    with ctx.uow() as uow:
        user = uow.users.get("abcde123")
    assert user is not None
    enrolment = devices.enrol_totp(ctx, user, USER)
    secret = base64.b32decode(enrolment.secret + "=" * (-len(enrolment.secret) % 8))
    now = int(clock.now().timestamp())
    devices.activate_device(
        ctx,
        user,
        enrolment.device.device_id,
        serial=None,
        response=otp.totp(secret, now),
        caller=USER,
    )
    clock.advance(timedelta(seconds=30))
    started = log_in(ctx)
    assert isinstance(started, login.SecondFactorNeeded)

    code = reset_code(application)
    password_reset.reset_password(
        ctx, username="abcde123", reset_code=code, new_password=NEW_PASSWORD, caller=USER
    )
    clock.advance(timedelta(seconds=30))
    with pytest.raises(LoginExpiredError):
        login_response.answer_second_factor(
            ctx,
            login_id=started.login_id,
            factor_id=started.factors[0].factor_id,
            response=otp.totp(secret, int(clock.now().timestamp())),
            caller=USER,
        )
    assert open_sessions(application) == 0


class AnotherLoginWhileChecking:
    """The service's hasher, but another login of the same user with the same password, due
    a re-hash (R2.1), completes while this one's password is checked."""

    def __init__(self, application: Application) -> None:
        self._real = application.context.hasher
        self.context: Context = dataclasses.replace(application.context, hasher=self)
        self.other: object = None
        self._inside = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def verify(self, stored_hash: str, secret: str) -> bool:
        right = bool(self._real.verify(stored_hash, secret))
        if self.other is None and not self._inside:
            self._inside = True
            self.other = log_in(self.context, platform=Platform.TRADING)
        return right

    def needs_rehash(self, stored_hash: str) -> bool:
        return True  # every login re-hashes: the other one rewrites the hash meanwhile


def test_another_logins_re_hash_during_the_check_leaves_the_password_right(
    application: Application, clock: FakeClock
) -> None:
    make_user(application)
    with application.context.uow() as uow:
        before = uow.users.get("abcde123")
    assert before is not None
    racing = AnotherLoginWhileChecking(application)

    outcome = log_in(racing.context)

    assert isinstance(outcome, login.LoggedIn) and isinstance(racing.other, login.LoggedIn)
    assert open_sessions(application) == 2  # both right logins, neither counted as a failure
    with application.context.uow() as uow:
        after = uow.users.get("abcde123")
        actions = [(r.event.action, r.event.outcome) for r in readable(uow.audit.records())]
    assert after is not None and after.password_hash != before.password_hash  # re-hashed once
    assert ("login.password", "invalid_credentials") not in actions
    clock.advance(timedelta(seconds=1))
    again = log_in(application.context)
    assert isinstance(again, login.LoggedIn)  # the stored hash is the password's
