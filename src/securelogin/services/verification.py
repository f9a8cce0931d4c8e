"""Identity verification of a caller by a Client Services agent (R8.2).

Everything an agent does is audited with the agent's identity (R8.1), what is refused
too: a start, an answer or an action refused here writes a record (the outcome its error
code) and commits it before the refusal is raised, so an agent probing accounts leaves a
trace. The answer typed is never in a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from securelogin.domain.accounts import StaffMember, User
from securelogin.domain.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    SecureLoginError,
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
# The actions of a refused start and answer (as "temporary_passcode.issue" is that of a
# refused issue, beside "temporary_passcode.issued").
START = "verification.start"
ANSWER = "verification.answer"


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
    hanging up (docs/recovery.md). A refusal (``not_found``, ``conflict``,
    ``verification_locked``) is audited as ``verification.start``."""
    if (username is None) == (email is None):
        raise InvalidRequestError("Give either a username or an e-mail address.", field="username")
    by = "email" if email is not None else "username"
    with ctx.uow() as uow:
        user: User | None = None
        try:
            user = _find_user(uow, username, email)
            uow.users.lock(user.user_id)  # one question at a time per user, as for a verdict
            now = ctx.clock.now()  # read under the lock: later than any answer before it
            _refuse_if_phone_locked(uow, user, now)
            answers = uow.users.security_answers(user.user_id)
            if not answers:
                raise ConflictError(message="This user has no security questions.")
        except (NotFoundError, ConflictError, VerificationLockedError) as refusal:
            # No user is the subject (unknown, or several share the address): what was named.
            named = {} if user else {by: (username or email or "")[:254]}
            _audit_refusal(uow, ctx, user, caller, START, refusal, {"by": by, **named})
            raise
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
            {"by": by, "repeated": bool(kept)},
        )
        uow.commit()
    return Started(verification_id, question)


def answer_verification(
    ctx: Context, agent: StaffMember, verification_id: str, answer: str, caller: Caller
) -> Passed:
    """Exact match (R8.2); three failures within 24 hours lock phone support for 24 hours.
    An answer refused (not to this agent's open verification, ``verification_required``, or
    phone support locked) is audited as ``verification.answer``."""
    check_answer_form(answer)
    shown_id = {"verification_id": verification_id[-8:]}
    with ctx.uow() as uow:
        verification = uow.verifications.get(verification_id[:128])
        reason = _not_answerable(verification, agent, ctx.clock.now())
        if verification is None or reason:
            subject = uow.users.get_by_id(verification.user_id) if verification else None
            refused = VerificationRequiredError()
            _audit_refusal(
                uow, ctx, subject, caller, ANSWER, refused, {**shown_id, "reason": reason}
            )
            raise refused
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
        try:
            _refuse_if_phone_locked(uow, user, now)
        except VerificationLockedError as locked:
            _audit_refusal(uow, ctx, user, caller, ANSWER, locked, shown_id)
            raise
        if not uow.verifications.settle(verification_id, "passed" if right else "failed", now):
            refused = VerificationRequiredError()  # answered already (one answer each)
            details = {**shown_id, "reason": "answered"}
            _audit_refusal(uow, ctx, user, caller, ANSWER, refused, details)
            raise refused
        audit(
            uow,
            now,
            user.username,
            caller,
            "verification.answered",
            "passed" if right else "failed",
            shown_id,
        )
        uow.commit()
    if not right:
        raise VerificationFailedError()
    return Passed(user.username, now + VERIFICATION_TTL)


def require_verification(
    ctx: Context,
    agent: StaffMember,
    verification_id: str | None,
    user: User | None,
    *,
    caller: Caller,
    action: str,
    named: Mapping[str, str] | None = None,
) -> datetime:
    """R8.2/R8.3: a passed, unexpired verification by this agent of this user, or refuse
    (always when ``user`` is None: an unknown user or device). Returns when it expires.

    A refusal is audited as ``action`` (what the agent asked for), the user as subject,
    ``named`` (what the agent named, the one trace of an unknown user or device) and why in
    the details."""
    verification = None
    if verification_id and len(verification_id) <= 128:
        with ctx.uow() as uow:
            verification = uow.verifications.get(verification_id)
    now = ctx.clock.now()
    if verification is None:
        reason = "unknown" if verification_id else "missing"
    elif verification.staff_id != agent.staff_id:
        reason = "another_agent"
    elif user is None or verification.user_id != user.user_id:
        reason = "another_user"
    elif verification.outcome != "passed" or verification.answered_at is None:
        reason = "not_passed"
    elif not is_verification_live(verification.answered_at, now):
        reason = "expired"
    else:
        return verification.answered_at + VERIFICATION_TTL
    details: dict[str, object] = {**(named or {}), "reason": reason}
    if verification_id:
        details["verification_id"] = verification_id[-8:]
    refused = VerificationRequiredError()
    with ctx.uow() as uow:
        _audit_refusal(uow, ctx, user, caller, action, refused, details)
    raise refused


def _not_answerable(
    verification: StoredVerification | None, agent: StaffMember, now: datetime
) -> str:
    """Why this agent cannot answer the verification now; empty if it can."""
    if verification is None:
        return "unknown"
    if verification.staff_id != agent.staff_id:
        return "another_agent"
    if verification.outcome is not None:
        return "answered"
    if now >= verification.started_at + VERIFICATION_TTL:
        return "expired"
    return ""


def _audit_refusal(
    uow: UnitOfWork,
    ctx: Context,
    user: User | None,
    caller: Caller,
    action: str,
    refusal: SecureLoginError,
    details: Mapping[str, object],
) -> None:
    """Audit a refused agent action, outcome its error code, and commit: the refusal is
    raised after, and a record it rolled back would leave no trace (R8.1, R9.1)."""
    audit(
        uow,
        ctx.clock.now(),
        user.username if user else None,
        caller,
        action,
        refusal.code,
        {**details, **refusal.extra_fields()},
    )
    uow.commit()


def _refuse_if_phone_locked(uow: UnitOfWork, user: User, now: datetime) -> None:
    failures = uow.verifications.failures_since(user.user_id, now - 2 * FAILURE_WINDOW)
    until = phone_lock_until(failures, now)
    if until is not None:
        raise VerificationLockedError(until)


def _find_user(uow: UnitOfWork, username: str | None, email: str | None) -> User:
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
