"""Key rotation for secrets at rest (R5.7): re-seal every secret under the current key."""

from __future__ import annotations

from securelogin.domain.audit import AuditEvent
from securelogin.services.context import Caller, Context
from securelogin.services.ports import SealedSecrets, SecretBox


def reseal_all(ctx: Context, new_box: SecretBox, caller: Caller) -> int:
    """Open every sealed secret with the keys ``ctx.box`` knows and seal it with
    ``new_box``, in one transaction: either every secret moves to the new key or none does.
    Returns how many devices were re-sealed."""
    count = 0
    with ctx.uow() as uow:
        for device_id, sealed in list(uow.devices.all_secrets()):
            secret = new_box.seal(ctx.box.open(sealed.secret, device_id), device_id)
            pin = None
            if sealed.pin is not None:
                pin = new_box.seal(ctx.box.open(sealed.pin, device_id), device_id)
            uow.devices.reseal(device_id, SealedSecrets(secret, pin))
            count += 1
        uow.audit.append(
            AuditEvent(
                at=ctx.clock.now(),
                actor=caller.actor,
                action="secrets.rotated",
                subject=None,
                outcome="ok",
                source=caller.source,
                details={"devices": count},
            )
        )
        uow.commit()
    return count
