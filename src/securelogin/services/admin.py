"""Operator use cases: creating users (R1, R2, R8.2 questions), creating and revoking staff
tokens."""

from __future__ import annotations

from dataclasses import dataclass

from securelogin.domain import usernames
from securelogin.domain.accounts import NewUser, StaffMember, StaffRole, check_country
from securelogin.domain.email_addresses import check_email
from securelogin.domain.errors import ConflictError, InvalidRequestError, NotFoundError
from securelogin.domain.passwords import check_new_password
from securelogin.domain.security_questions import QuestionAnswer, check_question_set
from securelogin.domain.tokens import MAX_TOKEN_LENGTH, encode_token, token_digest
from securelogin.services.attempts import audit
from securelogin.services.context import Caller, Context

STAFF_TOKEN_PREFIX = "slst_"  # noqa: S105 - a prefix, not a secret
PREFIX_RETRIES = 50  # R1.2: retry until unique; 50 draws of 1000 make a clash vanishingly rare
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class UserDetails:
    """What an operator gives for a new user."""

    password: str
    email: str
    country: str
    full_name: str
    security_questions: list[QuestionAnswer]
    username: str | None = None
    prefix: str | None = None


def create_user(ctx: Context, details: UserDetails, caller: Caller) -> str:
    """Create a user with a full username or a prefix (R1.2); return the username."""
    _check_details(details)
    candidates = _username_candidates(ctx, details)
    probe = details.username or details.prefix or ""
    check_new_password(ctx.policies.password, details.password, probe)
    password_hash = ctx.hasher.hash(details.password)
    answers = [(qa.question, ctx.hasher.hash(qa.answer)) for qa in details.security_questions]
    for username in candidates:
        check_new_password(ctx.policies.password, details.password, username)
        try:
            _insert_user(ctx, details, username, password_hash, answers, caller)
        except ConflictError:
            continue  # R1.2: a prefix retries with new digits until unique
        return username
    raise ConflictError(message="That username is taken.")


def _insert_user(
    ctx: Context,
    details: UserDetails,
    username: str,
    password_hash: str,
    answers: list[tuple[str, str]],
    caller: Caller,
) -> None:
    now = ctx.clock.now()
    with ctx.uow() as uow:
        if uow.users.exists(username):
            raise ConflictError(message="That username is taken.")
        user_id = uow.users.add(
            NewUser(username, password_hash, details.email, details.country, details.full_name, now)
        )
        uow.users.add_security_answers(user_id, answers)
        audit(uow, now, username, caller, "user.created", "ok", {"country": details.country})
        uow.commit()


def _username_candidates(ctx: Context, details: UserDetails) -> list[str]:
    if (details.username is None) == (details.prefix is None):
        raise InvalidRequestError("Give either a username or a prefix.", field="username")
    if details.username is not None:
        return [usernames.validate_new_username(details.username)]
    prefix = details.prefix or ""
    return [
        usernames.username_from_prefix(prefix, ctx.random.below(1000))
        for _ in range(PREFIX_RETRIES)
    ]


def _check_details(details: UserDetails) -> None:
    check_email(details.email)  # R6.7: where every notification goes
    check_country(details.country)
    if not 1 <= len(details.full_name) <= MAX_NAME_LENGTH or not details.full_name.isprintable():
        raise InvalidRequestError(
            f"The full name is 1 to {MAX_NAME_LENGTH} printable characters.", field="full_name"
        )
    check_question_set(details.security_questions)


def create_staff_token(ctx: Context, *, name: str, role: StaffRole, caller: Caller) -> str:
    """A bearer token for an agent or an admin, returned once and stored as a digest."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidRequestError("A staff name is 1 to 200 printable characters.", field="name")
    token = encode_token(STAFF_TOKEN_PREFIX, ctx.random.token_bytes(32))
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.staff.add(name=name, role=role, token_digest=token_digest(token), now=now)
        details = {"name": name, "role": str(role)}
        audit(uow, now, None, caller, "staff_token.created", "ok", details)
        uow.commit()
    return token


def revoke_staff_tokens(
    ctx: Context, *, name: str, role: StaffRole | None, caller: Caller
) -> list[StaffMember]:
    """Revoke every live token of the staff member ``name`` (only those of ``role`` when
    given), each audited. It takes effect at once, everywhere: every request looks its
    token up (``authenticate_staff``), the agent API's and the console's, whose cookie holds
    the same token. ``not_found`` when no live token has that name."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        revoked = uow.staff.revoke(name=name, role=role, now=now)
        if not revoked:
            raise NotFoundError(message="No staff token that is not revoked has that name.")
        for member in revoked:
            details = {"name": member.name, "role": str(member.role)}
            audit(uow, now, None, caller, "staff_token.revoked", "ok", details)
        uow.commit()
    return revoked


def authenticate_staff(ctx: Context, token: str | None) -> StaffMember | None:
    """The staff member a bearer token belongs to, if any."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.startswith(STAFF_TOKEN_PREFIX):
        return None
    with ctx.uow() as uow:
        return uow.staff.by_token(token_digest(token))
