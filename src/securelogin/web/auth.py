"""Who is calling: bearer tokens for user sessions and for staff."""

from __future__ import annotations

import ipaddress

from fastapi import Request

from securelogin.domain.accounts import StaffMember, StaffRole
from securelogin.domain.errors import ForbiddenError, UnauthenticatedError
from securelogin.services import admin, sessions
from securelogin.services.context import Caller, Context
from securelogin.services.sessions import ActiveSession


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def context_of(request: Request) -> Context:
    context: Context = request.app.state.application.context
    return context


def client_address(request: Request) -> str | None:
    """The caller's address for the audit log (R9.1). Behind a trusted proxy, the last
    address of ``X-Forwarded-For``: the one the proxy appended, the peer it saw. Those
    before it are whatever the client sent, so they are never taken, and an entry that is
    not an IP address is not taken either (the connection's peer is, as without a proxy)."""
    if request.app.state.settings.trust_forwarded_for:
        # All its lines, in order: a proxy may append a line of its own after the client's.
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        last = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return request.client.host if request.client else None


def require_session(request: Request) -> ActiveSession:
    return sessions.authenticate_session(context_of(request), bearer_token(request))


def require_staff(request: Request, role: StaffRole) -> StaffMember:
    """A staff token of ``role``; a user session or another role is ``forbidden``."""
    token = bearer_token(request)
    if token is None:
        raise UnauthenticatedError()
    member = admin.authenticate_staff(context_of(request), token)
    if member is None:
        if token.startswith(sessions.SESSION_TOKEN_PREFIX):
            sessions.authenticate_session(context_of(request), token)  # expired -> 401
            raise ForbiddenError()
        raise UnauthenticatedError()
    if member.role is not role:
        raise ForbiddenError()
    return member


def staff_caller(request: Request, member: StaffMember) -> Caller:
    return Caller(actor=f"{member.role}:{member.name}", source=client_address(request))


def user_caller(request: Request, username: str | None = None) -> Caller:
    actor = f"user:{username}" if username else "anonymous"
    return Caller(actor=actor, source=client_address(request))
