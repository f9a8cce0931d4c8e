"""The portal's cookie session: the same sessions as the API's bearer tokens."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from securelogin.domain.accounts import User
from securelogin.domain.errors import SecureLoginError
from securelogin.domain.sessions import Platform
from securelogin.services import access, sessions
from securelogin.services.sessions import ActiveSession
from securelogin.web.auth import context_of
from securelogin.web.portal.pages import SESSION_COOKIE


class SignedIn:
    def __init__(self, session: ActiveSession, user: User) -> None:
        self.session = session
        self.user = user

    @property
    def restricted(self) -> bool:
        return str(self.session.view.access) == "card_print_only"


async def signed_in(request: Request) -> SignedIn | None:
    """The live portal session of this browser, or None (the page then sends to /login).

    Only a session opened at the portal door counts: a trading session's token put in the
    cookie would escape the portal's 30-minute idle limit (R4.5) and its door's rules.
    """
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    ctx = context_of(request)
    try:
        session = await run_in_threadpool(sessions.authenticate_session, ctx, token)
        if session.view.platform is not Platform.PORTAL:
            return None
        user = await run_in_threadpool(access.user_of, ctx, session)
    except SecureLoginError:
        return None
    return SignedIn(session, user)
