"""Step two is one transaction: a crash anywhere before its commit leaves no trace.

The response is checked inside the transaction that counts it (services/login_response.py),
so a process that dies between checking and answering has admitted nothing, taken nothing
and claimed no TOTP step: the client, who got no answer, may answer again, and the same
code then logs in once.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Table, func, select

from securelogin.bootstrap import Application
from securelogin.domain import otp
from securelogin.domain.sessions import Platform
from securelogin.services import login_response
from securelogin.services.context import Caller
from securelogin.services.login import LoggedIn
from securelogin.storage.tables import lockout_failures, sessions
from tests.clock import FakeClock
from tests.integration.test_totp_concurrency import Enrolled, enrolled, step_one, two_servers

__all__ = ["enrolled", "two_servers"]  # fixtures used below


class CrashError(Exception):
    """The process dying halfway through the transaction."""


def rows(application: Application, table: Table) -> int:
    with application.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_crash_before_the_commit_leaves_the_attempt_open_and_the_step_unclaimed(
    two_servers: tuple[Application, Application],
    enrolled: Enrolled,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = two_servers[0]
    login_id, factor_id = step_one(server, Platform.PORTAL)
    code = otp.totp(enrolled.secret, int(clock.now().timestamp()))

    def crash(*_: object, **__: object) -> None:
        raise CrashError()

    with monkeypatch.context() as patch:  # dies after the check, before the session
        patch.setattr(login_response, "open_session", crash)
        with pytest.raises(CrashError):
            login_response.answer_second_factor(
                server.context,
                login_id=login_id,
                factor_id=factor_id,
                response=code,
                caller=Caller(),
            )

    assert rows(server, lockout_failures) == 0  # nothing admitted or counted
    assert rows(server, sessions) == 0
    answered = login_response.answer_second_factor(
        server.context, login_id=login_id, factor_id=factor_id, response=code, caller=Caller()
    )
    assert isinstance(answered, LoggedIn)  # the attempt was open, the step unclaimed
    assert rows(server, sessions) == 1
    assert rows(server, lockout_failures) == 0
