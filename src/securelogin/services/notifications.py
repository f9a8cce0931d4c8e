"""Telling the user (R6.7): e-mails written to the outbox in the event's own transaction.

A message never holds a secret (no passcode, code or card value): it says what happened,
when, and what to do if it was not the user.
"""

from __future__ import annotations

from datetime import datetime

from securelogin.domain.accounts import User
from securelogin.services.ports import UnitOfWork

NOT_YOU = (
    "If this was not you, call Client Services at once. We will never ask you for your "
    "password, passcodes or card values."
)

MESSAGES: dict[str, tuple[str, str]] = {
    "temporary_passcode_issued": (
        "A temporary passcode was issued for your account",
        "Client Services issued a temporary passcode for your account on {at}. Your "
        "security devices are suspended until you activate one again.",
    ),
    "device_activated": (
        "A security device was activated",
        "A security device ({detail}) was activated on your account on {at}. Temporary "
        "passcodes and online security code cards no longer work.",
    ),
    "device_lost": (
        "A security device was deactivated",
        "Your security device {detail} was marked lost or damaged on {at} and will never "
        "work again.",
    ),
    "device_ordered": (
        "A security device was ordered",
        "A security device ({detail}) was ordered for your account on {at}.",
    ),
    "password_reset": (
        "Your password was changed",
        "The password of your account was reset on {at}. Every session was ended.",
    ),
    "account_locked": (
        "Your account is locked",
        "After 10 failed login attempts, logins to your account are refused until {detail}.",
    ),
}


def notify(uow: UnitOfWork, user: User, event: str, at: datetime, detail: str = "") -> None:
    """Queue the e-mail for ``event`` in the caller's transaction."""
    subject, template = MESSAGES[event]
    stamp = at.strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"Dear {user.full_name},\n\n"
        f"{template.format(at=stamp, detail=detail)}\n\n{NOT_YOU}\n\nusername: {user.username}\n"
    )
    uow.outbox.add(user.user_id, user.email, subject, body, at)
