"""What a session may do (R4.5 access levels, R6.6 limits of temporary credentials)."""

from __future__ import annotations

from securelogin.domain.accounts import User
from securelogin.domain.errors import ForbiddenError, UnauthenticatedError
from securelogin.domain.login import FactorKind
from securelogin.domain.sessions import Access
from securelogin.services.context import Context
from securelogin.services.sessions import ActiveSession


def user_of(ctx: Context, session: ActiveSession) -> User:
    with ctx.uow() as uow:
        user = uow.users.get_by_id(session.user_id)
    if user is None:
        raise UnauthenticatedError()
    return user


def require_security_settings(session: ActiveSession) -> None:
    """Changing security settings (enrol, order) needs a full session not made with a
    temporary passcode (R6.6)."""
    view = session.view
    if view.access is not Access.FULL or view.factor_kind == FactorKind.TEMPORARY_PASSCODE:
        raise ForbiddenError()


def require_activation_right(session: ActiveSession) -> None:
    """Activating a device needs a full session (R6.6: a temporary passcode's session is
    full only in its first 2 days; an online card's is full)."""
    if session.view.access is not Access.FULL:
        raise ForbiddenError()
