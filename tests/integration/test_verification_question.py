"""R8.2: a caller cannot draw another security question by hanging up (docs/recovery.md).

While a verification of a user started within the last 24 hours is unanswered (by any
agent, expired or not), a new one asks its question again; only an answer (passed or
failed), or 24 hours without an unanswered one, lets the system draw at random again.

Through the services, on SQLite and PostgreSQL: the decision is read from the database in
the transaction that adds the verification. The random source cycles through the
questions, so every fresh draw asks another question than the draw before it.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from securelogin.bootstrap import Application
from securelogin.domain.accounts import StaffMember, StaffRole
from securelogin.domain.errors import VerificationFailedError, VerificationLockedError
from securelogin.services import admin, verification
from securelogin.services.context import Caller, Context
from securelogin.services.verification import Started
from tests.clock import FakeClock
from tests.conftest import QUESTIONS, make_user, readable

USERNAME = "abcde123"
ANSWERS = {q["question"]: q["answer"] for q in QUESTIONS}
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
THREADS = 8


class CyclingRandom:
    """Draws 0, 1, 2, 0, 1, … (below 3): no fresh draw repeats the one before it."""

    def __init__(self) -> None:
        self._draws = 0
        self._lock = threading.Lock()

    def below(self, n: int) -> int:
        with self._lock:
            self._draws += 1
            return (self._draws - 1) % n

    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)  # verification ids stay unguessable


@pytest.fixture
def context(application: Application) -> Context:
    make_user(application, USERNAME)
    return dataclasses.replace(application.context, random=CyclingRandom())


def new_agent(context: Context, name: str) -> StaffMember:
    token = admin.create_staff_token(
        context, name=name, role=StaffRole.AGENT, caller=Caller("test")
    )
    staff = admin.authenticate_staff(context, token)
    assert staff is not None
    return staff


@pytest.fixture
def amy(context: Context) -> StaffMember:
    return new_agent(context, "amy")


@pytest.fixture
def bob(context: Context) -> StaffMember:
    return new_agent(context, "bob")


def start(context: Context, agent: StaffMember) -> Started:
    return verification.start_verification(
        context, agent, username=USERNAME, email=None, caller=Caller("test")
    )


def fail(context: Context, agent: StaffMember, started: Started) -> None:
    with pytest.raises(VerificationFailedError):
        verification.answer_verification(
            context, agent, started.verification_id, "certainly wrong", Caller("test")
        )


def repeated_flags(context: Context) -> list[bool]:
    """The ``repeated`` detail of the user's verification.started records, oldest first."""
    with context.uow() as uow:
        return [
            r.event.details["repeated"]
            for r in readable(uow.audit.records(USERNAME))
            if r.event.action == "verification.started"
        ]


def test_an_abandoned_verification_is_asked_again_by_any_agent_expired_or_not(
    context: Context, amy: StaffMember, bob: StaffMember, clock: FakeClock
) -> None:
    first = start(context, amy)
    for call in range(12):
        clock.advance(20 * MINUTE if call % 2 else MINUTE)  # some expired, some not
        again = start(context, bob if call % 2 else amy)
        assert again.question == first.question
        assert again.verification_id != first.verification_id
    assert repeated_flags(context) == [False] + [True] * 12


def test_a_failed_answer_lets_the_next_verification_draw_again_and_still_counts(
    context: Context, amy: StaffMember, bob: StaffMember, clock: FakeClock
) -> None:
    abandoned = start(context, amy)
    clock.advance(MINUTE)
    kept = start(context, bob)
    assert kept.question == abandoned.question
    fail(context, bob, kept)
    clock.advance(MINUTE)

    drawn = start(context, amy)

    assert drawn.question != abandoned.question
    assert repeated_flags(context) == [False, True, False]
    fail(context, amy, drawn)
    clock.advance(MINUTE)
    fail(context, amy, start(context, amy))  # the third failure within 24 hours
    with pytest.raises(VerificationLockedError):
        start(context, bob)


def test_a_passed_answer_lets_the_next_verification_draw_again(
    context: Context, amy: StaffMember, clock: FakeClock
) -> None:
    abandoned = start(context, amy)
    clock.advance(MINUTE)
    kept = start(context, amy)
    assert kept.question == abandoned.question
    verification.answer_verification(
        context, amy, kept.verification_id, ANSWERS[kept.question], Caller("test")
    )
    clock.advance(MINUTE)

    drawn = start(context, amy)

    assert drawn.question != abandoned.question
    assert repeated_flags(context) == [False, True, False]


def test_an_unanswered_verification_keeps_its_question_for_24_hours_and_no_longer(
    context: Context, amy: StaffMember, clock: FakeClock
) -> None:
    abandoned = start(context, amy)
    clock.advance(24 * HOUR)
    kept = start(context, amy)  # 24 hours to the microsecond after: still kept
    assert kept.question == abandoned.question

    clock.advance(24 * HOUR + SECOND)  # no unanswered verification of the last 24 hours
    drawn = start(context, amy)

    assert drawn.question != abandoned.question
    assert repeated_flags(context) == [False, True, False]


@pytest.mark.slow
def test_simultaneous_verifications_of_one_user_all_ask_the_same_question(
    context: Context, application: Application, clock: FakeClock
) -> None:
    """Each start runs on its own thread and pooled connection, all released together."""
    agents = [new_agent(context, f"agent{i}") for i in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def start_together(agent: StaffMember) -> Started:
        barrier.wait()
        return start(context, agent)

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            started = list(pool.map(start_together, agents))
        assert len({s.question for s in started}) == 1
        assert len({s.verification_id for s in started}) == THREADS
        clock.advance(MINUTE)
        fail(context, agents[0], started[0])  # an answer: the next round draws again
        clock.advance(HOUR)
    flags = repeated_flags(context)
    assert flags.count(False) == 3  # one fresh draw per round, every other start kept it
    assert flags.count(True) == 3 * (THREADS - 1)
