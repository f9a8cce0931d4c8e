"""Which second factor a login needs (R4.3, R4.4): the seam between the two login steps.

This module answers, for a user whose password was right, one of three things:
the password is enough, these factors are offered, or nothing usable is left.
Today no device exists yet (they come with the devices work), so every user is
"never enrolled" and logs in with the password alone (R4.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from securelogin.domain.accounts import User
from securelogin.domain.login import OfferedFactor
from securelogin.domain.sessions import Platform
from securelogin.services.context import Context
from securelogin.services.ports import UnitOfWork


@dataclass(frozen=True)
class FactorPlan:
    """``password_only``, or ``factors`` to choose from; neither means none is usable."""

    password_only: bool
    factors: tuple[OfferedFactor, ...] = ()


def plan_second_factor(
    ctx: Context, uow: UnitOfWork, user: User, platform: Platform, now: datetime
) -> FactorPlan:
    """R4.3: users never enrolled in the Secure Login System log in with the password alone."""
    del ctx, uow, user, platform, now  # nothing to consult until devices exist
    return FactorPlan(password_only=True)
