"""Device state changes that follow from the clock or from another device (R5.4, R5.5).

Auto-activation (R5.4) is decided by the clock at the moment it matters, whenever a
user's devices are read for a decision (a login, a listing, an activation): a mailed device
whose 14 days have passed is activated *as of the moment its 14 days ended*, in the same
transaction as the decision that noticed it. No background job is needed for correctness.
"""

from __future__ import annotations

from datetime import datetime

from securelogin.domain import devices as rules
from securelogin.domain.accounts import User
from securelogin.domain.devices import Device, DeviceState
from securelogin.services.attempts import audit
from securelogin.services.context import Caller, Context
from securelogin.services.notifications import notify
from securelogin.services.ports import UnitOfWork
from securelogin.services.temporary_credentials import end_temporary_credentials

SYSTEM = Caller(actor="system")


def refresh_devices(
    ctx: Context, uow: UnitOfWork, user: User, now: datetime, caller: Caller
) -> list[Device]:
    """The user's devices as of ``now``, with every auto-activation due applied."""
    devices = uow.devices.for_user(user.user_id)
    due = False
    for device in devices:
        moment = rules.auto_activation_due(device, now)
        due = due or moment is not None
        if moment is not None and uow.devices.change_state(
            device.device_id, DeviceState.ACTIVE, moment, allowed_from=[DeviceState.MAILED]
        ):
            audit(
                uow,
                now,
                user.username,
                SYSTEM,
                "device.activated",
                "auto_activated",
                {
                    "device_id": device.device_id,
                    "activated_at": moment.isoformat(),
                    "noticed_by": caller.actor,
                },
            )
            notify(uow, user, "device_activated", now, f"{device.kind} {device.serial[-5:]}")
            on_permanent_device_active(ctx, uow, user, moment, now)
    # Read again whenever one was due, applied here or by another request meanwhile (whose
    # change the guarded update waited for and then did not repeat).
    return uow.devices.for_user(user.user_id) if due else devices


def on_permanent_device_active(
    ctx: Context, uow: UnitOfWork, user: User, activated_at: datetime, now: datetime
) -> None:
    """R5.5: when a permanent device becomes active, every temporary credential ends.

    The seam for temporary credentials (temporary passcode, online card): they are ended
    here, in the transaction that activated the device, so none outlives the activation.
    """
    del ctx  # kept for symmetry with the other state changes
    ended = end_temporary_credentials(uow, user, now, "permanent_device_active")
    if ended:
        audit(
            uow,
            now,
            user.username,
            SYSTEM,
            "temporary_credentials.ended",
            "ok",
            {
                "reason": "permanent_device_active",
                "activated_at": activated_at.isoformat(),
                "ended": ended,
            },
        )
