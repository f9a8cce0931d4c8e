"""Offering a permanent device as a second factor, and checking its response (R5).

The response's *form* is checked before anything is counted (domain/responses.py);
this module decides whether a well-formed response is *right*. Secrets are opened from
their sealed form only here, for the moment of the check, and never logged.
"""

from __future__ import annotations

import json
from datetime import datetime

from securelogin.domain import cards, ocra, otp
from securelogin.domain.devices import Device, DeviceKind, DeviceState, label_for
from securelogin.domain.login import FactorKind, OfferedFactor
from securelogin.domain.responses import (
    CARD_FORM,
    CHALLENGE_CARD_FORM,
    PASSCODE_FORM,
    TOTP_FORM,
    ResponseForm,
)
from securelogin.domain.tokens import encode_token
from securelogin.services.context import Context
from securelogin.services.ports import UnitOfWork

FACTOR_ID_PREFIX = "fct_"
CHALLENGE_DIGITS = 6  # R5 challenge card: a 6-digit numeric challenge (QN06)
CHALLENGE_CARD_SUITE = ocra.parse_ocra_suite(ocra.CHALLENGE_CARD_SUITE)

FORMS: dict[FactorKind, ResponseForm] = {
    FactorKind.TOTP: TOTP_FORM,
    FactorKind.CHALLENGE_CARD: CHALLENGE_CARD_FORM,
    FactorKind.CODE_CARD: CARD_FORM,
    FactorKind.ONLINE_CARD: CARD_FORM,
    FactorKind.TEMPORARY_PASSCODE: PASSCODE_FORM,
}


def new_challenge(ctx: Context, kind: DeviceKind) -> tuple[str | None, tuple[int, int] | None]:
    """A fresh challenge for one answer: a 6-digit code, two card indices, or none (TOTP)."""
    if kind is DeviceKind.CHALLENGE_CARD:
        return "".join(str(ctx.random.below(10)) for _ in range(CHALLENGE_DIGITS)), None
    if kind is DeviceKind.CODE_CARD:
        return None, cards.pick_indices(ctx.random.below)
    return None, None


def offer_device(ctx: Context, device: Device) -> OfferedFactor:
    """An active device as a choice at step one, with its own fresh challenge."""
    code, indices = new_challenge(ctx, device.kind)
    return OfferedFactor(
        factor_id=encode_token(FACTOR_ID_PREFIX, ctx.random.token_bytes(32)),
        kind=device.kind.factor_kind,
        label=label_for(device.kind, device.serial),
        challenge_code=code,
        challenge_indices=indices,
        credential_id=device.device_id,
    )


def challenge_text(code: str | None, indices: tuple[int, int] | None) -> str | None:
    """The stored form of an activation challenge."""
    if code is None and indices is None:
        return None
    return json.dumps({"code": code, "indices": list(indices) if indices else None})


def parse_challenge(text: str | None) -> tuple[str | None, tuple[int, int] | None]:
    if text is None:
        return None, None
    data = json.loads(text)
    indices = data.get("indices")
    return data.get("code"), (int(indices[0]), int(indices[1])) if indices else None


def is_right_device_response(
    ctx: Context,
    uow: UnitOfWork,
    device_id: str,
    *,
    code: str | None,
    indices: tuple[int, int] | None,
    response: str,
    now: datetime,
    states: frozenset[DeviceState] = frozenset({DeviceState.ACTIVE}),
) -> bool:
    """Whether ``response`` answers the challenge for this device, in one of ``states``.

    For an authenticator app, a right code also claims its time step, atomically in the
    database: of two simultaneous requests with the same code, only one can succeed.
    """
    found = uow.devices.with_secrets(device_id)
    if found is None or found[0].state not in states:
        return False
    device, sealed = found
    secret = ctx.box.open(sealed.secret, device_id)
    if device.kind is DeviceKind.TOTP:
        step = otp.match_totp(secret, response, int(now.timestamp()), last_used_step=None)
        return step is not None and uow.devices.claim_totp_step(device_id, step)
    if device.kind is DeviceKind.CHALLENGE_CARD:
        if code is None or sealed.pin is None:
            return False
        return ocra.verify_ocra_response(
            CHALLENGE_CARD_SUITE,
            secret,
            response,
            question=code,
            password_hash=ctx.box.open(sealed.pin, device_id),
        )
    if indices is None:
        return False
    values = {int(k): v for k, v in json.loads(secret).items()}
    return cards.is_right_response(values, indices, response)
