"""Permanent security devices (R5): kinds, states, shipping and activation rules.

stateDiagram-v2 (docs/devices.md has the diagram with every transition)

pending  --activate (valid code)-->            active      authenticator app
mailed   --activate (serial + response)-->     active      physical device
mailed   --14 days after mailing-->            active      R5.4, decided by the clock
active   --temporary passcode issued-->        suspended   R6.4
suspended --activate (serial + response)-->    active      R5.4
any but lost/damaged --agent: lost/damaged-->  lost | damaged (final)  R5.6
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from securelogin.domain.login import FactorKind

US_ARRIVAL = timedelta(days=2)  # R5.3: 2 days after mailing in the United States
ABROAD_ARRIVAL = timedelta(days=14)  # R5.3: 14 days for every other country
AUTO_ACTIVATION = timedelta(days=14)  # R5.4: activates by itself 14 days after mailing
FIRST_DEVICE_GRACE = timedelta(days=14)  # R4.3: password alone while the first device travels
PIN_LENGTH = 4  # R5.2: 4-digit PIN of a challenge card


class DeviceKind(enum.StrEnum):
    TOTP = "totp"
    CHALLENGE_CARD = "challenge_card"
    CODE_CARD = "code_card"

    @property
    def is_physical(self) -> bool:
        return self is not DeviceKind.TOTP

    @property
    def factor_kind(self) -> FactorKind:
        return FactorKind(self.value)


class DeviceState(enum.StrEnum):
    PENDING = "pending"  # an authenticator app being enrolled
    MAILED = "mailed"  # a physical device on its way
    ACTIVE = "active"
    SUSPENDED = "suspended"  # R6.4: while a temporary passcode is in use
    LOST = "lost"  # R5.6: never works again
    DAMAGED = "damaged"  # R5.6: never works again


ACTIVATABLE = frozenset({DeviceState.PENDING, DeviceState.MAILED, DeviceState.SUSPENDED})
FINAL = frozenset({DeviceState.LOST, DeviceState.DAMAGED})


@dataclass(frozen=True)
class Device:
    """A device as the services see it (its secret stays encrypted in storage)."""

    device_id: str
    user_id: int
    kind: DeviceKind
    serial: str
    state: DeviceState
    created_at: datetime
    mailed_at: datetime | None
    expected_arrival: datetime | None
    activated_at: datetime | None
    country: str | None


def expected_arrival(mailed_at: datetime, country: str) -> datetime:
    """R5.3: 2 days for the United States, 14 days elsewhere."""
    return mailed_at + (US_ARRIVAL if country == "US" else ABROAD_ARRIVAL)


def auto_activation_moment(device: Device) -> datetime | None:
    """R5.4: the moment a mailed device activates by itself (None if it is not mailed)."""
    if device.state is not DeviceState.MAILED or device.mailed_at is None:
        return None
    return device.mailed_at + AUTO_ACTIVATION


def auto_activation_due(device: Device, now: datetime) -> datetime | None:
    """R5.4: the moment a mailed device activated by itself, if that moment has come."""
    moment = auto_activation_moment(device)
    return moment if moment is not None and now >= moment else None


def first_auto_activation(devices: list[Device]) -> datetime | None:
    """R5.4, R5.5: the first moment one of these devices activates by itself, which ends
    every temporary credential (and the sessions opened with one)."""
    moments = [m for m in map(auto_activation_moment, devices) if m is not None]
    return min(moments, default=None)


def is_enrolled(devices: list[Device]) -> bool:
    """R4.3: enrolled = has, or has had, a permanent security device.

    A pending authenticator-app enrolment is not yet a device the user has.
    """
    return any(d.state is not DeviceState.PENDING for d in devices)


def in_first_device_grace(devices: list[Device], now: datetime) -> bool:
    """R4.3: the first device was mailed under 14 days ago and was never activated."""
    ends = first_device_grace_end(devices)
    return ends is not None and now < ends


def first_device_grace_end(devices: list[Device]) -> datetime | None:
    """R4.3: when the password alone stops being enough while the first device travels,
    14 days after it was mailed (when it activates by itself, R5.4); None if no device was
    ever activated nor mailed, or one was activated."""
    physical = [d for d in devices if d.state is not DeviceState.PENDING]
    if any(d.activated_at is not None for d in physical):
        return None
    mailed = [d.mailed_at for d in physical if d.mailed_at is not None]
    return min(mailed) + FIRST_DEVICE_GRACE if mailed else None


def label_for(kind: DeviceKind, serial: str) -> str:
    """What the device picker shows (e.g. ``card 80213``)."""
    if kind is DeviceKind.TOTP:
        return "authenticator app"
    noun = "card" if kind is DeviceKind.CHALLENGE_CARD else "code card"
    return f"{noun} {serial[-5:]}"
