"""Sessions (R4.5-R4.7): opening one after a successful login, reading it, ending it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from securelogin.domain import sessions as rules
from securelogin.domain.audit import AuditEvent
from securelogin.domain.errors import UnauthenticatedError
from securelogin.domain.sessions import Access, Platform
from securelogin.domain.tokens import MAX_TOKEN_LENGTH, encode_token, token_digest
from securelogin.services.context import Caller, Context
from securelogin.services.ports import StoredSession, UnitOfWork

SESSION_TOKEN_PREFIX = "sls_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class SessionView:
    """A session as the contract shows it (the token only once, at creation)."""

    username: str
    platform: Platform
    access: Access
    factor_kind: str | None
    expires_at: datetime
    replaced_trading_session: bool = False
    token: str | None = field(default=None, repr=False)  # a bearer secret: never in a repr


@dataclass(frozen=True)
class ActiveSession:
    """A live session, for the edges to authorise with."""

    session_id: int
    user_id: int
    view: SessionView
    credential_ref: str | None


def open_session(
    ctx: Context,
    uow: UnitOfWork,
    *,
    user_id: int,
    username: str,
    platform: Platform,
    access: Access,
    factor_kind: str | None,
    credential_ref: str | None,
    caller: Caller,
    not_after: datetime | None = None,
) -> SessionView:
    """Create a session inside the caller's transaction (the login's last step).

    ``not_after``: the session ends then at the latest, whatever the door allows (a
    temporary credential's end, R6.3, R7.4, R5.5)."""
    now = ctx.clock.now()
    replaced = False
    if platform is Platform.TRADING:  # R4.6: at most one trading session per user
        for previous in uow.sessions.open_sessions(user_id, Platform.TRADING):
            replaced = replaced or _is_live(ctx, previous, now)
            uow.sessions.end(previous.session_id, now)
    token = encode_token(SESSION_TOKEN_PREFIX, ctx.random.token_bytes(32))
    uow.sessions.add(
        token_digest=token_digest(token),
        user_id=user_id,
        platform=platform,
        access=access,
        factor_kind=factor_kind,
        credential_ref=credential_ref,
        now=now,
        not_after=not_after,
    )
    uow.audit.append(
        AuditEvent(
            at=now,
            actor=f"user:{username}",
            action="session.created",
            subject=username,
            outcome="ok",
            source=caller.source,
            details={
                "platform": str(platform),
                "access": str(access),
                "factor_kind": factor_kind,
                "replaced_trading_session": replaced,
                **({"not_after": not_after.isoformat()} if not_after else {}),
            },
        )
    )
    expires_at = rules.current_expiry(ctx.policies.sessions, platform, now, now, not_after)
    return SessionView(username, platform, access, factor_kind, expires_at, replaced, token)


def authenticate_session(ctx: Context, token: str | None) -> ActiveSession:
    """The live session a bearer token names, its idle clock restarted; else refuse."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise UnauthenticatedError()
    now = ctx.clock.now()
    with ctx.uow() as uow:
        stored = uow.sessions.get(token_digest(token))
        if stored is None or not _is_live(ctx, stored, now):
            raise UnauthenticatedError()
        uow.sessions.touch(stored.session_id, now)
        uow.commit()
    return ActiveSession(
        stored.session_id, stored.user_id, _view(ctx, stored, now), stored.credential_ref
    )


def end_session(ctx: Context, session: ActiveSession, caller: Caller) -> None:
    """R4.7: logout ends the session at once."""
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.sessions.end(session.session_id, now)
        uow.audit.append(
            AuditEvent(
                at=now,
                actor=f"user:{session.view.username}",
                action="session.ended",
                subject=session.view.username,
                outcome="ok",
                source=caller.source,
                details={"reason": "logout", "platform": str(session.view.platform)},
            )
        )
        uow.commit()


def _is_live(ctx: Context, stored: StoredSession, now: datetime) -> bool:
    if stored.ended_at is not None:
        return False
    return rules.is_live(
        ctx.policies.sessions,
        stored.platform,
        stored.created_at,
        stored.last_seen_at,
        now,
        stored.not_after,
    )


def _view(ctx: Context, stored: StoredSession, now: datetime) -> SessionView:
    expires_at = rules.current_expiry(
        ctx.policies.sessions, stored.platform, stored.created_at, now, stored.not_after
    )
    return SessionView(
        stored.username, stored.platform, stored.access, stored.factor_kind, expires_at
    )
