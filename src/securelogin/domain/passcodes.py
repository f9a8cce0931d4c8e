"""Temporary passcodes (R6): form, windows and the rule against consecutive passcodes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from securelogin.domain.cards import CARD_ALPHABET
from securelogin.domain.errors import PlatformNotPermittedError
from securelogin.domain.sessions import Access, Platform

PASSCODE_ALPHABET = CARD_ALPHABET  # R6.2
PASSCODE_LENGTH = 8  # R6.2 (our choice where the brokerage's knowledge base is silent)
FULL_ACCESS_WINDOW = timedelta(days=2)  # R6.3: first 2 days, both doors
PORTAL_ONLY_WINDOW = timedelta(days=10)  # R6.3: next 10 days, portal, card_print_only


def make_passcode(below: Callable[[int], int]) -> str:
    """A new passcode; ``below(n)`` is the caller's CSPRNG."""
    return "".join(PASSCODE_ALPHABET[below(len(PASSCODE_ALPHABET))] for _ in range(PASSCODE_LENGTH))


def full_access_until(issued_at: datetime) -> datetime:
    return issued_at + FULL_ACCESS_WINDOW


def portal_access_until(issued_at: datetime) -> datetime:
    return issued_at + FULL_ACCESS_WINDOW + PORTAL_ONLY_WINDOW


def is_usable(issued_at: datetime, now: datetime) -> bool:
    """R6.3: after 12 days it works nowhere."""
    return now < portal_access_until(issued_at)


def access_at(issued_at: datetime, platform: Platform, now: datetime) -> Access:
    """R6.3: the access a login with this passcode gets now, or PlatformNotPermittedError.

    Callers first check ``is_usable``.
    """
    if now < full_access_until(issued_at):
        return Access.FULL
    if platform is Platform.TRADING:
        raise PlatformNotPermittedError(
            hint="A temporary passcode works at the trading platform only in its first 2 days. "
            "Log in to the Client Portal to get an online security code card."
        )
    return Access.CARD_PRINT_ONLY


def access_until(issued_at: datetime, access: Access) -> datetime:
    """R6.3: the end of the window that gives this access (a session made with the passcode
    ends then at the latest)."""
    if access is Access.FULL:
        return full_access_until(issued_at)
    return portal_access_until(issued_at)


def may_issue_another(last_issued_at: datetime | None, last_activation_at: datetime | None) -> bool:
    """R6.5: no passcode while the last one was issued after the last device activation."""
    if last_issued_at is None:
        return True
    return last_activation_at is not None and last_activation_at > last_issued_at
