"""Identity verification of a caller by a Client Services agent (R8.2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from securelogin.domain.accounts import StaffMember, User
from securelogin.domain.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    VerificationFailedError,
    VerificationLockedError,
    VerificationRequiredError,
)
from securelogin.domain.security_questions import check_answer_form
from securelogin.domain.tokens import encode_token
from securelogin.domain.verification import (
    FAILURE_WINDOW,
    QUESTION_KEPT,
    VERIFICATION_TTL,
    is_verification_live,
    phone_lock_until,
)
from securelogin.services.attempts import audit
from securelogin.services.context import Caller, Context
from securelogin.services.ports import StoredVerification, UnitOfWork

VERIFICATION_ID_PREFIX = "ver_"


@dataclass(frozen=True)
class Started:
    verification_id: str
    question: str


@dataclass(frozen=True)
class Passed:
    username: str
    expires_at: datetime


def start_verification(
    ctx: Context, agent: StaffMember, *, username: str | None, email: str | None, caller: Caller
) -> Started:
    """Pick one of the user's questions at random (R8.2), unless a verification of the user
    is still unanswered: then its question again, so a caller cannot draw another one by
    hanging up (docs/recovery.md)."""
    with ctx.uow() as uow:
        user = _find_user(uow, username, email)
        uow.users.lock(user.user_id)  # one question at a time per user, as for a verdict
        now = ctx.clock.now()  # read under the lock: later than any answer before it
        _refuse_if_phone_locked(uow, user, now)
        answers = uow.users.security_answers(user.user_id)
        if not answers:
            raise ConflictError(message="This user has no security questions.")
        pending = uow.verifications.newest_unanswered(user.user_id, now - QUESTION_KEPT)
        kept = [a for a in answers if pending is not None and a[0] == pending.answer_id]
        answer_id, question, _ = kept[0] if kept else answers[ctx.random.below(len(answers))]
        verification_id = encode_token(VERIFICATION_ID_PREFIX, ctx.random.token_bytes(32))
        uow.verifications.add(
            StoredVerification(
                verification_id,
                agent.staff_id,
                user.user_id,
                answer_id,
                email is not None,
                now,
                None,
                None,
            )
        )
        audit(
            uow,
            now,
            user.username,
            caller,
            "verification.started",
            "ok",
            {"by": "email" if email is not None else "username", "repeated": bool(kept)},
        )
        uow.commit()
    return Started(verification_id, question)


def answer_verification(
    ctx: Context, agent: StaffMember, verification_id: str, answer: str, caller: Caller
) -> Passed:
    """Exact match (R8.2); three failures within 24 hours lock phone support for 24 hours."""
    check_answer_form(answer)
    with ctx.uow() as uow:
        verification = _open_verification(uow, agent, verification_id, ctx.clock.now())
        stored_hash = next(
            h
            for a, _, h in uow.users.security_answers(verification.user_id)
            if a == verification.answer_id
        )
    right = ctx.hasher.verify(stored_hash, answer)
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.users.lock(verification.user_id)  # one verdict at a time per user
        user = _user(uow, verification.user_id)
        _refuse_if_phone_locked(uow, user, now)
        if not uow.verifications.settle(verification_id, "passed" if right else "failed", now):
            raise VerificationRequiredError()  # answered already (one answer each)
        audit(
            uow,
            now,
            user.username,
            caller,
            "verification.answered",
            "passed" if right else "failed",
            {"verification_id": verification_id[-8:]},
        )
        uow.commit()
    if not right:
        raise VerificationFailedError()
    return Passed(user.username, now + VERIFICATION_TTL)


def require_verification(
    ctx: Context, agent: StaffMember, verification_id: str | None, user_id: int
) -> datetime:
    """R8.2/R8.3: a passed, unexpired verification by this agent of this user, or refuse.
    Returns when it expires."""
    if not verification_id or len(verification_id) > 128:
        raise VerificationRequiredError()
    with ctx.uow() as uow:
        verification = uow.verifications.get(verification_id)
    if (
        verification is None
        or verification.staff_id != agent.staff_id
        or verification.user_id != user_id
        or verification.outcome != "passed"
        or verification.answered_at is None
        or not is_verification_live(verification.answered_at, ctx.clock.now())
    ):
        raise VerificationRequiredError()
    return verification.answered_at + VERIFICATION_TTL


def _open_verification(
    uow: UnitOfWork, agent: StaffMember, verification_id: str, now: datetime
) -> StoredVerification:
    verification = uow.verifications.get(verification_id[:128])
    if (
        verification is None
        or verification.staff_id != agent.staff_id
        or verification.outcome is not None
        or now >= verification.started_at + VERIFICATION_TTL
    ):
        raise VerificationRequiredError()
    return verification


def _refuse_if_phone_locked(uow: UnitOfWork, user: User, now: datetime) -> None:
    failures = uow.verifications.failures_since(user.user_id, now - 2 * FAILURE_WINDOW)
    until = phone_lock_until(failures, now)
    if until is not None:
        raise VerificationLockedError(until)


def _find_user(uow: UnitOfWork, username: str | None, email: str | None) -> User:
    if (username is None) == (email is None):
        raise InvalidRequestError("Give either a username or an e-mail address.", field="username")
    if username is not None:
        user = uow.users.get(username)
        if user is None:
            raise NotFoundError()
        return user
    matches = uow.users.by_email(email or "")
    if not matches:
        raise NotFoundError()
    if len(matches) > 1:
        raise ConflictError(
            message="Several accounts use this e-mail address; ask the caller "
            "for the username or another detail."
        )
    return matches[0]


def _user(uow: UnitOfWork, user_id: int) -> User:
    user = uow.users.get_by_id(user_id)
    if user is None:
        raise NotFoundError()
    return user
