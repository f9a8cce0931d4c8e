"""R5 (totp) and R4.2 under concurrency: one valid authenticator code logs in once.

An attacker who sees a code as it is typed (shoulder surfing, a phishing proxy) replays it
at once, many times, against many servers. Here 50 step-two requests carry the same valid
code at the same moment (a barrier), through TWO independently built applications on the
same database, each with its own engine and connection pool, as two server processes
behind a load balancer would be:

- 50 login attempts (step one done beforehand, one after another), all answered at once:
  the replay race on the used TOTP step (R5: "a code, or an earlier step, already
  accepted is never accepted again");
- one login attempt answered 50 times at once: the race on the attempt itself (R4.2: one
  response per login attempt).

Both end in exactly one session. Runs on SQLite and on PostgreSQL (``database_url``).
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Table, func, select

from securelogin.adapters.hashing import Argon2Hasher
from securelogin.bootstrap import Application, build
from securelogin.config import Settings
from securelogin.domain import otp
from securelogin.domain.errors import SecureLoginError
from securelogin.domain.login import FactorKind
from securelogin.domain.sessions import Platform
from securelogin.services import devices, login, login_response
from securelogin.services.audit import verify_audit_chain
from securelogin.services.context import Caller
from securelogin.services.login import LoggedIn, SecondFactorNeeded
from securelogin.storage.tables import audit_records, lockout_failures, lockout_subjects, sessions
from securelogin.storage.tables import devices as devices_table
from tests.clock import FakeClock
from tests.conftest import PASSWORD, TEST_SECRET_KEY, make_user

REQUESTS = 50
USER = "abcde123"
STEP = timedelta(seconds=30)
LOCKOUT_THRESHOLD = 10  # R3.2, the default


@dataclass(frozen=True)
class Enrolled:
    device_id: str
    secret: bytes


@dataclass(frozen=True)
class Answer:
    """One step-two request: which server, which attempt, which factor."""

    server: Application
    login_id: str
    factor_id: str


@pytest.fixture
def two_servers(
    database_url: str, clock: FakeClock, fast_hasher: Argon2Hasher
) -> Iterator[tuple[Application, Application]]:
    """Two applications on one database: separate engines, separate connection pools."""
    settings = Settings(database_url=database_url, secret_key=TEST_SECRET_KEY)
    first = build(settings, clock=clock, hasher=fast_hasher)
    second = build(settings, clock=clock, hasher=fast_hasher)
    try:
        assert first.engine is not second.engine
        assert first.engine.pool is not second.engine.pool
        yield first, second
    finally:
        first.dispose()
        second.dispose()


@pytest.fixture
def enrolled(two_servers: tuple[Application, Application], clock: FakeClock) -> Enrolled:
    """The user has an active authenticator app, activated one step ago."""
    ctx = two_servers[0].context
    make_user(two_servers[0], USER, PASSWORD)
    with ctx.uow() as uow:
        user = uow.users.get(USER)
    assert user is not None
    enrolment = devices.enrol_totp(ctx, user, Caller("test"))
    secret = base64.b32decode(enrolment.secret + "=" * (-len(enrolment.secret) % 8))
    device_id = enrolment.device.device_id
    code = otp.totp(secret, int(clock.now().timestamp()))
    devices.activate_device(ctx, user, device_id, serial=None, response=code, caller=Caller("t"))
    clock.advance(STEP)  # the activation used its step: the logins below need the next one
    return Enrolled(device_id, secret)


def step_one(server: Application, platform: Platform) -> tuple[str, str]:
    """Username and password accepted: the login id and the authenticator app's factor id."""
    started = login.start_login(
        server.context, username=USER, password=PASSWORD, platform=platform, caller=Caller()
    )
    assert isinstance(started, SecondFactorNeeded), started
    (factor,) = started.factors
    assert factor.kind is FactorKind.TOTP
    return started.login_id, factor.factor_id


def answer_all_at_once(answers: list[Answer], code: str) -> Counter[str]:
    """Send every answer at the same moment (one thread each, behind a barrier)."""
    barrier = threading.Barrier(len(answers))

    def send(index: int) -> str:
        answer = answers[index]
        barrier.wait()
        try:
            result = login_response.answer_second_factor(
                answer.server.context,
                login_id=answer.login_id,
                factor_id=answer.factor_id,
                response=code,
                caller=Caller(source=f"127.0.0.{index + 1}"),
            )
        except SecureLoginError as refusal:
            return refusal.code
        assert isinstance(result, LoggedIn)
        assert result.session.factor_kind == "totp"
        return "logged_in"

    with ThreadPoolExecutor(max_workers=len(answers)) as pool:
        return Counter(pool.map(send, range(len(answers))))


def count(server: Application, table: Table, **where: str) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with server.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def last_used_step(server: Application, device_id: str) -> int | None:
    query = select(devices_table.c.last_used_step).where(devices_table.c.device_id == device_id)
    with server.engine.connect() as connection:
        step: int | None = connection.execute(query).scalar_one()
    return step


def current_step(clock: FakeClock) -> int:
    return int(clock.now().timestamp()) // int(STEP.total_seconds())


@pytest.mark.slow
def test_one_code_replayed_on_fifty_login_attempts_at_once_through_two_pools_logs_in_once(
    two_servers: tuple[Application, Application], enrolled: Enrolled, clock: FakeClock
) -> None:
    answers = []
    for index in range(REQUESTS):
        server = two_servers[index % 2]
        platform = Platform.PORTAL if index % 4 < 2 else Platform.TRADING  # both doors
        answers.append(Answer(server, *step_one(server, platform)))
    assert len({a.login_id for a in answers}) == REQUESTS
    code = otp.totp(enrolled.secret, int(clock.now().timestamp()))

    outcomes = answer_all_at_once(answers, code)

    # Exactly one request wins the step; every other one is a wrong response (R5), and
    # counts as a failed attempt (R3.1). The first to settle logs in and resets the run
    # (R3.4): replays evaluated alongside it are wiped with the run, and the next 10
    # replays lock the account (R3.2), so the rest are refused unevaluated (R3.3, R3.5).
    assert outcomes["logged_in"] == 1, outcomes
    assert set(outcomes) <= {"logged_in", "login_failed", "account_locked"}, outcomes
    failed = outcomes["login_failed"]
    assert LOCKOUT_THRESHOLD <= failed <= 2 * LOCKOUT_THRESHOLD - 1, outcomes
    assert outcomes["account_locked"] == REQUESTS - 1 - failed, outcomes
    server = two_servers[0]
    assert count(server, sessions) == 1
    assert last_used_step(server, enrolled.device_id) == current_step(clock)
    assert count(server, audit_records, action="login.second_factor", outcome="ok") == 1
    assert count(server, lockout_failures, subject=USER) == LOCKOUT_THRESHOLD
    with server.engine.connect() as connection:
        locked_until = connection.execute(
            select(lockout_subjects.c.locked_until).where(lockout_subjects.c.subject == USER)
        ).scalar_one()
    assert locked_until == clock.now() + timedelta(hours=24)
    # Fifty audited answers at once through two pools, and the locks they set: one
    # unbroken chain (R9.2).
    assert verify_audit_chain(server.context).intact


@pytest.mark.slow
def test_one_login_attempt_answered_fifty_times_at_once_through_two_pools_logs_in_once(
    two_servers: tuple[Application, Application], enrolled: Enrolled, clock: FakeClock
) -> None:
    login_id, factor_id = step_one(two_servers[0], Platform.PORTAL)
    answers = [Answer(two_servers[i % 2], login_id, factor_id) for i in range(REQUESTS)]
    code = otp.totp(enrolled.secret, int(clock.now().timestamp()))

    outcomes = answer_all_at_once(answers, code)

    # R4.2: whoever takes the attempt first answers it; the others find it used. Nothing
    # was guessed by them, so nothing is counted.
    assert outcomes == Counter({"logged_in": 1, "login_expired": REQUESTS - 1})
    server = two_servers[1]
    assert count(server, sessions) == 1
    assert last_used_step(server, enrolled.device_id) == current_step(clock)
    assert count(server, lockout_failures, subject=USER) == 0
    assert count(server, audit_records, action="login.second_factor", outcome="ok") == 1
