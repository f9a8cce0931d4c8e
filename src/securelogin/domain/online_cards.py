"""The online security code card (R7): lifetime and state."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

ONLINE_CARD_LIFETIME = timedelta(days=21)  # R7.3: 21 days after activation


class OnlineCardState(enum.StrEnum):
    ISSUED = "issued"  # printed, awaiting activation
    ACTIVE = "active"
    EXPIRED = "expired"  # 21 days after activation (decided by the clock)
    ENDED = "ended"  # a permanent device became active, or it was replaced (R5.5, R7.5)


@dataclass(frozen=True)
class OnlineCard:
    card_id: str
    user_id: int
    issued_at: datetime
    activated_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None

    def state(self, now: datetime) -> OnlineCardState:
        if self.ended_at is not None:
            return OnlineCardState.ENDED
        if self.expires_at is None:
            return OnlineCardState.ISSUED
        return OnlineCardState.ACTIVE if now < self.expires_at else OnlineCardState.EXPIRED


def expiry_after_activation(activated_at: datetime) -> datetime:
    return activated_at + ONLINE_CARD_LIFETIME
