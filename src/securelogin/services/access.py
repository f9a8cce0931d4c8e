"""What a session may do (R4.5 access levels, R6.6 limits of temporary credentials)."""

from __future__ import annotations

from securelogin.domain.accounts import User
from securelogin.domain.errors import ForbiddenError, UnauthenticatedError
from securelogin.domain.login import FactorKind
from securelogin.domain.passcodes import full_access_until
from securelogin.domain.sessions import Access, Platform
from securelogin.services.context import Context
from securelogin.services.sessions import ActiveSession


def user_of(ctx: Context, session: ActiveSession) -> User:
    with ctx.uow() as uow:
        user = uow.users.get_by_id(session.user_id)
    if user is None:
        raise UnauthenticatedError()
    return user


def require_security_settings(session: ActiveSession) -> None:
    """Changing security settings (enrol, order) needs a full portal session (R5.1; for an
    order docs/devices.md says why) not made with a temporary passcode (R6.6)."""
    view = session.view
    if view.platform is not Platform.PORTAL:
        raise ForbiddenError()
    if view.access is not Access.FULL or view.factor_kind == FactorKind.TEMPORARY_PASSCODE:
        raise ForbiddenError()


def require_activation_right(ctx: Context, session: ActiveSession) -> None:
    """Activating a device needs a full session; one made with a temporary passcode only
    within the passcode's first 2 days (R6.6); one made with an online card is full."""
    if session.view.access is not Access.FULL:
        raise ForbiddenError()
    if session.view.factor_kind != FactorKind.TEMPORARY_PASSCODE:
        return
    with ctx.uow() as uow:
        passcode = uow.passcodes.latest(session.user_id)
    if (
        passcode is None
        or passcode.passcode_id != session.credential_ref
        or ctx.clock.now() >= full_access_until(passcode.issued_at)
    ):
        raise ForbiddenError()


def require_card_access(session: ActiveSession) -> None:
    """The online card is for full and ``card_print_only`` sessions alike (R7.1), at the
    portal only: it is requested, printed and activated in the Client Portal."""
    if session.view.platform is not Platform.PORTAL:
        raise ForbiddenError()
    if session.view.access not in (Access.FULL, Access.CARD_PRINT_ONLY):
        raise ForbiddenError()
