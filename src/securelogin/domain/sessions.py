"""Sessions (R4.5-R4.7): doors, access levels and expiry."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


class Platform(enum.StrEnum):
    """The two doors (R4.1)."""

    PORTAL = "portal"
    TRADING = "trading"


class Access(enum.StrEnum):
    """What a session may do (R4.5, R6.3)."""

    FULL = "full"
    CARD_PRINT_ONLY = "card_print_only"


@dataclass(frozen=True)
class SessionPolicy:
    """R4.5 defaults."""

    portal_idle: timedelta = timedelta(minutes=30)  # R4.5: 30 minutes idle
    portal_absolute: timedelta = timedelta(hours=12)  # R4.5: 12 hours in all
    trading_absolute: timedelta = timedelta(hours=24)  # R4.5: trading sessions 24 hours


@dataclass(frozen=True)
class Grant:
    """What a right second-factor response gives the session it opens: its access, and
    the moment it ends at the latest (None: the door's own limit)."""

    access: Access
    not_after: datetime | None = None

    def ending_by(self, moment: datetime | None) -> Grant:
        """This grant, ending at ``moment`` if that is sooner."""
        if moment is None or (self.not_after is not None and self.not_after <= moment):
            return self
        return Grant(self.access, moment)


def absolute_expiry(
    policy: SessionPolicy,
    platform: Platform,
    created_at: datetime,
    not_after: datetime | None = None,
) -> datetime:
    """The moment a session ends whatever its use: the door's limit, or ``not_after`` if
    sooner (the end of the temporary credential it was opened with, R6.3, R7.4, R5.5)."""
    if platform is Platform.PORTAL:
        end = created_at + policy.portal_absolute
    else:
        end = created_at + policy.trading_absolute
    return end if not_after is None else min(end, not_after)


def current_expiry(
    policy: SessionPolicy,
    platform: Platform,
    created_at: datetime,
    last_seen_at: datetime,
    not_after: datetime | None = None,
) -> datetime:
    """When the session ends if it is not used again (idle limit for the portal)."""
    end = absolute_expiry(policy, platform, created_at, not_after)
    if platform is Platform.PORTAL:
        end = min(end, last_seen_at + policy.portal_idle)
    return end


def is_live(
    policy: SessionPolicy,
    platform: Platform,
    created_at: datetime,
    last_seen_at: datetime,
    now: datetime,
    not_after: datetime | None = None,
) -> bool:
    """A session is live strictly before its current expiry."""
    return now < current_expiry(policy, platform, created_at, last_seen_at, not_after)
