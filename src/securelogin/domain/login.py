"""The login flow (R4): factor kinds and the login attempt between its two steps.

A login attempt (kratos calls it a flow) is created by step one when a second factor is
needed, and ends in one of three ways:

    awaiting_response --(a response, right or wrong)--> used
    awaiting_response --(5 minutes pass)--> expired      (decided by the clock, not stored)

One response per attempt (R4.2): a wrong response ends the attempt too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from securelogin.domain.sessions import Platform

LOGIN_ATTEMPT_TTL = timedelta(minutes=5)  # R4.2: a login attempt expires 5 minutes after step one


class FactorKind(enum.StrEnum):
    """The kinds of second factor a login may offer (HTTP contract, Login)."""

    TOTP = "totp"
    CHALLENGE_CARD = "challenge_card"
    CODE_CARD = "code_card"
    ONLINE_CARD = "online_card"
    TEMPORARY_PASSCODE = "temporary_passcode"


@dataclass(frozen=True)
class OfferedFactor:
    """One second factor offered at step one, with its challenge where it has one."""

    factor_id: str  # random, this login attempt's own: never a device id
    kind: FactorKind
    label: str
    challenge_code: str | None = None  # challenge card: 6 digits
    challenge_indices: tuple[int, int] | None = None  # code card, online card
    credential_id: str = ""  # the device, card or passcode behind it (never shown)


@dataclass(frozen=True)
class LoginAttempt:
    """A login between step one and step two."""

    login_id: str
    user_id: int
    username: str
    platform: Platform
    created_at: datetime
    expires_at: datetime
    factors: tuple[OfferedFactor, ...]


def attempt_expiry(created_at: datetime) -> datetime:
    """R4.2: 5 minutes after step one."""
    return created_at + LOGIN_ATTEMPT_TTL


def is_attempt_open(expires_at: datetime, used: bool, now: datetime) -> bool:
    """Open until used or expired."""
    return not used and now < expires_at
