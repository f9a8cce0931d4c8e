"""Which second factor a login needs (R4.3, R4.4): the seam between the two login steps.

For a user whose password was right, the answer is one of three: the password is enough
(never enrolled, or the first device still travelling), these factors are offered (each
with its own fresh challenge), or nothing usable is left (``no_usable_second_factor``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from securelogin.domain import devices as rules
from securelogin.domain.accounts import User
from securelogin.domain.devices import DeviceState
from securelogin.domain.login import OfferedFactor
from securelogin.domain.sessions import Platform
from securelogin.services.context import Caller, Context
from securelogin.services.device_states import refresh_devices
from securelogin.services.factor_checks import offer_device
from securelogin.services.ports import UnitOfWork
from securelogin.services.temporary_credentials import offer_temporary


@dataclass(frozen=True)
class FactorPlan:
    """``password_only``, or ``factors`` to choose from; neither means none is usable
    (``platform_refused``: only because a temporary passcode is not valid at this door).
    ``not_after``: a password-only session ends then at the latest (the first device's
    grace, R4.3)."""

    password_only: bool
    factors: tuple[OfferedFactor, ...] = ()
    platform_refused: bool = False
    not_after: datetime | None = None


def plan_second_factor(
    ctx: Context, uow: UnitOfWork, user: User, platform: Platform, now: datetime, caller: Caller
) -> FactorPlan:
    """R4.3/R4.4, decided at this moment (auto-activations due are applied first)."""
    devices = refresh_devices(ctx, uow, user, now, caller)
    if not rules.is_enrolled(devices):
        return FactorPlan(password_only=True)
    grace_ends = rules.first_device_grace_end(devices)
    if grace_ends is not None and now < grace_ends:
        # The password alone, while the first device travels: the session ends with that
        # window too, when the device activates by itself, as a temporary credential's does
        # (R5.5), so that no password-only session outlives the rule that allowed it.
        return FactorPlan(password_only=True, not_after=grace_ends)
    # Every permanent device works at both doors.
    offered = [offer_device(ctx, d) for d in devices if d.state is DeviceState.ACTIVE]
    if offered:
        # No temporary credential outlives a permanent device's activation (R5.5), and
        # issuing a passcode suspends the active devices (R6.4): with an active device
        # there is none to offer, and none is looked up (a login's statements count).
        return FactorPlan(False, tuple(offered))
    # Temporary credentials have their windows.
    temporary, refused_here = offer_temporary(ctx, uow, user, platform, now)
    return FactorPlan(False, tuple(temporary), platform_refused=not temporary and refused_here)
