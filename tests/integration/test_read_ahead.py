"""Reads sent ahead (storage/prepared.py, ``Prepared.ahead``) and writes whose results are
read later (``queue_returning``): the round trips they save a login on PostgreSQL, and the
rules that keep them exact.

- A password login takes 6 round trips on PostgreSQL (9 before): the stored hash is read
  with the admission's lock and tally, the second-factor plan's devices with the
  settlement's user read, and the admission's pending failure, whose id is read only once
  committed, is written with the audit head's lock (``queue_returning``). Its response
  to an authenticator app takes 5 (7 before): the login attempt is taken and the device
  read with the admission's lock and tally, after them.
- A read sent ahead runs after the statement that carries it, so it reads what that
  statement waited for: a login whose admission waited for the subject's lock behind a
  password reset reads the new hash, as before (a review found the first version of this
  change reading it before the lock, and so the old hash).
- A wrong password takes 6 round trips (9 before): its failure is settled, and the newest
  failures that decide the lock read after it, in one.
- The take of a login attempt runs after the subject's lock (the lock order): a response
  waiting behind a password change holds no lock on its attempt; and one told to wait
  (Busy) takes nothing until it is admitted.
- A name never tried costs a password login the same round trips as a known one.
- What a repository read ahead is forgotten at its next write, so a read never returns a
  row as it was before the same transaction changed it.
- The audit head is locked in a round trip of its own before the commit, after the
  transaction's last writes: a response's TOTP step is claimed (the device's row) and its
  new session takes a share of the user's row (its foreign key) before the head. So a
  response waiting for either row holds no head, and the transaction holding the row
  commits (an online card's request and a verification question hold the user's row,
  then lock the head). Sent with the TOTP step's claim instead, a round trip fewer, the
  head's lock deadlocked with them: PostgreSQL ended the login with a 503 (tried on
  7 December, bench/README.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, Select, Transaction, select

from securelogin.bootstrap import Application
from securelogin.domain import otp
from securelogin.domain.audit import AuditEvent
from securelogin.domain.devices import DeviceState
from securelogin.domain.errors import (
    InvalidCredentialsError,
    LoginExpiredError,
    LoginFailedError,
    TooManyRequestsError,
)
from securelogin.domain.sessions import Platform
from securelogin.services import login, login_response
from securelogin.services.audit import verify_audit_chain
from securelogin.services.context import Caller, Context
from securelogin.services.login import LoggedIn, SecondFactorNeeded
from securelogin.services.ports import Admitted
from securelogin.storage.audit import SqlAuditLog
from securelogin.storage.tables import devices, users
from tests.clock import FakeClock
from tests.conftest import PASSWORD
from tests.integration.test_pipeline import counting_round_trips, wait_for_a_lock_wait
from tests.integration.test_totp_concurrency import USER, Enrolled, enrolled, step_one, two_servers

__all__ = ["enrolled", "two_servers"]  # fixtures used below


def round_trips_of(monkeypatch: pytest.MonkeyPatch, call: Callable[[], object]) -> list[int]:
    """The commands of each round trip to PostgreSQL that ``call`` takes."""
    with monkeypatch.context() as patch:
        sent = counting_round_trips(patch)
        call()
    return sent


def answer_with(ctx: Context, login_id: str, factor_id: str, code: str) -> LoggedIn:
    return login_response.answer_second_factor(
        ctx, login_id=login_id, factor_id=factor_id, response=code, caller=Caller()
    )


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_password_login_takes_6_round_trips_and_its_authenticator_code_5(
    two_servers: tuple[Application, Application],
    enrolled: Enrolled,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = two_servers[0]
    step_one(server, Platform.PORTAL)  # every statement prepared on the pool's connection
    started: list[tuple[str, str]] = []

    password = round_trips_of(
        monkeypatch, lambda: started.append(step_one(server, Platform.PORTAL))
    )
    ((login_id, factor_id),) = started
    code = otp.totp(enrolled.secret, int(clock.now().timestamp()))
    answered: list[object] = []

    def answer() -> None:
        answered.append(answer_with(server.context, login_id, factor_id, code))

    authenticator = round_trips_of(monkeypatch, answer)

    assert isinstance(answered[0], LoggedIn)
    # admission: lock, tally and the user; the pending failure and the audit head; its
    # commit. settlement: lock, devices and the user; the audit head; its commit.
    assert len(password) == 6
    # the attempt; lock, tally, the take and the device; the TOTP step; the audit head;
    # the commit.
    assert len(authenticator) == 5


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_wrong_authenticator_code_takes_5_round_trips(
    two_servers: tuple[Application, Application],
    enrolled: Enrolled,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = two_servers[0]
    now = int(clock.now().timestamp())
    near = {otp.totp(enrolled.secret, now + steps * 30) for steps in range(-3, 4)}
    wrong = next(code for code in (f"{n:06d}" for n in range(10)) if code not in near)
    login_id, factor_id = step_one(server, Platform.PORTAL)

    def answer() -> None:
        with pytest.raises(LoginFailedError):
            answer_with(server.context, login_id, factor_id, wrong)

    # the attempt; lock, tally, the take and the device; the failure settled and the
    # newest settled failures read after it; the audit head; the commit.
    assert len(round_trips_of(monkeypatch, answer)) == 5


def answer_while_held(
    servers: tuple[Application, Application],
    enrolled: Enrolled,
    clock: FakeClock,
    row: Select[Any],
    statement_waiting: str,
) -> tuple[list[object], bool]:
    """A right authenticator code answered through the first server while a transaction
    of the second holds ``row`` (``FOR UPDATE``); once the response waits for it (its
    ``statement_waiting``), that transaction appends to the audit log and commits, as the
    service's own transactions end. What the response got, and whether the holder's
    commit had to wait for it (for the audit head)."""
    answering, holding = servers
    login_id, factor_id = step_one(answering, Platform.PORTAL)
    code = otp.totp(enrolled.secret, int(clock.now().timestamp()))
    outcome: list[object] = []
    committed = threading.Event()

    def answer() -> None:
        try:
            outcome.append(answer_with(answering.context, login_id, factor_id, code))
        except Exception as refused:  # whatever it was, the assertions show it
            outcome.append(refused)

    def append_and_commit(connection: Connection, transaction: Transaction) -> None:
        log = SqlAuditLog(connection)
        log.append(AuditEvent(clock.now(), "test", "test.holder", USER, "ok", None, {}))
        log.flush()
        transaction.commit()
        committed.set()

    with holding.engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(row.with_for_update()).one()
        waiter = threading.Thread(target=answer)
        waiter.start()
        wait_for_a_lock_wait(holding.engine, statement_waiting)
        finisher = threading.Thread(target=append_and_commit, args=(connection, transaction))
        finisher.start()
        finisher.join(5)  # milliseconds, unless it waits for the response
        held_up = not committed.is_set()
        finisher.join(30)
        if transaction.is_active:
            transaction.rollback()
    waiter.join(30)
    return outcome, held_up


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_response_waiting_for_its_users_row_holds_no_audit_head(
    two_servers: tuple[Application, Application], enrolled: Enrolled, clock: FakeClock
) -> None:
    """A new session takes a share of its user's row (its foreign key) before the audit
    head: while an online card's request or a verification question holds that row (then
    locks the head), the response waits for it holding no head, and both commit."""
    with two_servers[0].engine.connect() as connection:
        user_id = connection.execute(select(users.c.user_id).where(users.c.username == USER))
        row = select(users.c.user_id).where(users.c.user_id == user_id.scalar_one())

    outcome, held_up = answer_while_held(two_servers, enrolled, clock, row, "INSERT INTO sessions")

    assert not held_up, "the holder of the user's row waited for a response waiting for it"
    assert len(outcome) == 1 and isinstance(outcome[0], LoggedIn), outcome
    assert verify_audit_chain(two_servers[0].context).intact


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_response_waiting_for_its_devices_row_holds_no_audit_head(
    two_servers: tuple[Application, Application], enrolled: Enrolled, clock: FakeClock
) -> None:
    """The TOTP step is claimed before the audit head is locked (the lock order: the
    device, then the head): while another transaction holds the device's row, the
    response waits for it holding no head, and both commit."""
    row = select(devices.c.device_id).where(devices.c.device_id == enrolled.device_id)

    outcome, held_up = answer_while_held(two_servers, enrolled, clock, row, "UPDATE devices")

    assert not held_up, "the holder of the device's row waited for a response waiting for it"
    assert len(outcome) == 1 and isinstance(outcome[0], LoggedIn), outcome
    assert verify_audit_chain(two_servers[0].context).intact


def test_a_device_read_ahead_is_forgotten_when_the_device_is_written(
    two_servers: tuple[Application, Application], enrolled: Enrolled, clock: FakeClock
) -> None:
    ctx = two_servers[0].context
    with ctx.uow() as uow:
        uow.devices.read_ahead(enrolled.device_id)
        user = uow.users.get(USER)
        assert user is not None
        uow.devices.read_ahead_for_user(user.user_id)
        changed = uow.devices.change_state(
            enrolled.device_id,
            DeviceState.SUSPENDED,
            clock.now(),
            allowed_from=[DeviceState.ACTIVE],
        )
        found = uow.devices.with_secrets(enrolled.device_id)
        devices = uow.devices.for_user(user.user_id)
    assert changed
    assert found is not None and found[0].state is DeviceState.SUSPENDED
    assert [d.state for d in devices] == [DeviceState.SUSPENDED]


def test_a_user_read_ahead_is_forgotten_when_the_user_is_written(
    two_servers: tuple[Application, Application], enrolled: Enrolled, clock: FakeClock
) -> None:
    ctx = two_servers[0].context
    with ctx.uow() as uow:
        user = uow.users.get(USER)
        assert user is not None
        uow.users.read_ahead(USER)
        uow.users.set_password_hash(user.user_id, "$argon2id$changed")
        again = uow.users.get(USER)
    assert again is not None and again.password_hash == "$argon2id$changed"


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_wrong_password_takes_6_round_trips(
    two_servers: tuple[Application, Application],
    enrolled: Enrolled,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = two_servers[0].context

    def wrong() -> None:
        with pytest.raises(InvalidCredentialsError):
            login.start_login(
                ctx,
                username=USER,
                password="not the password",
                platform=Platform.PORTAL,
                caller=Caller(),
            )

    wrong()  # every statement prepared on the pool's connection
    # admission: lock, tally and the user; the pending failure and the audit head; its
    # commit. settlement: lock, the failure settled and the newest settled failures read
    # after it; the audit head; its commit (9 before: the pending failure, and the newest
    # failure and its window's count, each in a round trip of its own).
    assert len(round_trips_of(monkeypatch, wrong)) == 6


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_login_waiting_behind_a_password_reset_reads_the_new_hash(
    two_servers: tuple[Application, Application], enrolled: Enrolled, clock: FakeClock
) -> None:
    """The stored hash is read in the admission's first round trip, after the subject's
    lock: a login with the new password that waited for a reset's lock logs in, and
    counts no failure."""
    resetting, logging_in = two_servers
    new_password = "Brand9newpassword"
    outcome: list[object] = []

    def log_in() -> None:
        try:
            outcome.append(
                login.start_login(
                    logging_in.context,
                    username=USER,
                    password=new_password,
                    platform=Platform.PORTAL,
                    caller=Caller(),
                )
            )
        except InvalidCredentialsError as refused:
            outcome.append(refused)

    with resetting.context.uow() as uow:  # as a reset: the subject's lock, then the hash
        uow.lockout.hold(USER)
        user = uow.users.get(USER)
        assert user is not None
        uow.users.set_password_hash(user.user_id, resetting.context.hasher.hash(new_password))
        waiter = threading.Thread(target=log_in)
        waiter.start()
        wait_for_a_lock_wait(resetting.engine)
        assert not outcome
        uow.commit()
    waiter.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], SecondFactorNeeded), outcome


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_response_takes_its_login_attempt_only_after_the_subjects_lock(
    two_servers: tuple[Application, Application], enrolled: Enrolled, clock: FakeClock
) -> None:
    """The take goes with the admission's round trip, after the subject's lock (the lock
    order is the subject, then the attempt): a response waiting for a password change's
    lock holds no lock on its attempt, so the change ends the attempt without waiting (had
    the take gone first, each would wait for the other: a deadlock, one of them failed),
    and the response then finds its attempt used."""
    changing, answering = two_servers
    login_id, factor_id = step_one(answering, Platform.PORTAL)
    code = otp.totp(enrolled.secret, int(clock.now().timestamp()))
    outcome: list[object] = []

    def answer() -> None:
        try:
            outcome.append(answer_with(answering.context, login_id, factor_id, code))
        except Exception as refused:  # whatever it was, the assertion below shows it
            outcome.append(refused)

    with changing.context.uow() as uow:  # as a password change: the lock, then the attempts
        uow.lockout.hold(USER)
        user = uow.users.get(USER)
        assert user is not None
        waiter = threading.Thread(target=answer)
        waiter.start()
        wait_for_a_lock_wait(changing.engine)
        assert uow.logins.end_all(user.user_id, clock.now()) == 1
        uow.commit()
    waiter.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], LoginExpiredError), outcome


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_name_never_tried_costs_a_password_login_the_round_trips_of_a_known_one(
    two_servers: tuple[Application, Application],
    enrolled: Enrolled,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = two_servers[0]

    def wrong_password(username: str) -> list[int]:
        def attempt() -> None:
            with pytest.raises(InvalidCredentialsError):
                login.start_login(
                    server.context,
                    username=username,
                    password=PASSWORD + "x",
                    platform=Platform.PORTAL,
                    caller=Caller(),
                )

        return round_trips_of(monkeypatch, attempt)

    wrong_password(USER)  # every statement prepared on the pool's connection
    known, never_tried = wrong_password(USER), wrong_password("never999")
    assert known == never_tried  # the commands of each round trip, alike


def test_a_response_told_to_wait_takes_nothing_until_it_is_admitted(
    two_servers: tuple[Application, Application], enrolled: Enrolled, clock: FakeClock
) -> None:
    """The take goes with the admission, before it is known whether the guess may be
    evaluated: a response told to wait (Busy: a password guess in flight holds the last
    place) rolls its take back with the rest. Waiting out its 10 seconds it gets 429 and
    its attempt stays open; once the guess in flight is settled, it is evaluated and logs
    in (a take kept from a Busy round would answer login_expired)."""
    server, other = two_servers
    login_id, factor_id = step_one(server, Platform.PORTAL)
    code = otp.totp(enrolled.secret, int(clock.now().timestamp()))
    policy = server.context.policies.lockout
    with other.context.uow() as uow:  # nine failures settled, one password guess in flight
        for _ in range(policy.threshold - 1):
            wrong = uow.lockout.admit(USER, clock.now(), policy)
            assert isinstance(wrong, Admitted)
            uow.lockout.confirm(USER, wrong, clock.now(), policy)
        in_flight = uow.lockout.admit(USER, clock.now(), policy)
        assert isinstance(in_flight, Admitted)
        uow.commit()
    in_flight = in_flight.committed()
    pauses: list[float] = []

    def answer(pause: Callable[[float], None]) -> LoggedIn:
        return answer_with(replace(server.context, pause=pause), login_id, factor_id, code)

    with pytest.raises(TooManyRequestsError):
        answer(pauses.append)  # every pause at once: waits its 10 seconds out
    assert len(pauses) > 1
    assert login_response.open_attempt(server.context, login_id) is not None

    def settle_the_guess_in_flight(_: float) -> None:
        with other.context.uow() as uow:
            uow.lockout.withdraw(USER, in_flight)
            uow.commit()

    assert isinstance(answer(settle_the_guess_in_flight), LoggedIn)
    assert login_response.open_attempt(server.context, login_id) is None
