"""Key rotation for secrets at rest (R5.7): re-seal every secret under the current key.

Every sealed column is here: a device's secret and PIN hash (``devices``, bound to the
device id; pending TOTP enrolments included) and an online card's values
(``online_cards``, bound to the card id). A column sealed elsewhere must be added here, or
a rotation leaves it sealed under a key the operator then removes.
"""

from __future__ import annotations

from dataclasses import dataclass

from securelogin.domain.audit import AuditEvent
from securelogin.services.context import Caller, Context
from securelogin.services.ports import SealedSecrets, SecretBox


@dataclass(frozen=True)
class Resealed:
    """How many rows of each kind a rotation re-sealed."""

    devices: int
    online_cards: int

    def __str__(self) -> str:
        return f"{self.devices} devices and {self.online_cards} online cards"


def reseal_all(ctx: Context, new_box: SecretBox, caller: Caller) -> Resealed:
    """Open every sealed secret with the keys ``ctx.box`` knows and seal it with
    ``new_box``, in one transaction: either every secret moves to the new key or none does."""
    devices = cards = 0
    with ctx.uow() as uow:
        for device_id, sealed in list(uow.devices.all_secrets()):
            secret = new_box.seal(ctx.box.open(sealed.secret, device_id), device_id)
            pin = None
            if sealed.pin is not None:
                pin = new_box.seal(ctx.box.open(sealed.pin, device_id), device_id)
            uow.devices.reseal(device_id, SealedSecrets(secret, pin))
            devices += 1
        for card_id, values_sealed in list(uow.online_cards.all_secrets()):
            uow.online_cards.reseal(
                card_id, new_box.seal(ctx.box.open(values_sealed, card_id), card_id)
            )
            cards += 1
        uow.audit.append(
            AuditEvent(
                at=ctx.clock.now(),
                actor=caller.actor,
                action="secrets.rotated",
                subject=None,
                outcome="ok",
                source=caller.source,
                details={"devices": devices, "online_cards": cards},
            )
        )
        uow.commit()
    return Resealed(devices, cards)
