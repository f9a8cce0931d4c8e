"""The user's own security devices (R5): enrol, order, list, activate.

Every response to an activation challenge is a guess at a secret, so it goes through the
lockout like a login response (attempts.count_attempt): counted before it is checked,
withdrawn when right.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from securelogin.domain import cards, ocra, otp
from securelogin.domain.accounts import User, check_country
from securelogin.domain.devices import (
    ACTIVATABLE,
    PIN_LENGTH,
    Device,
    DeviceKind,
    DeviceState,
    expected_arrival,
)
from securelogin.domain.errors import (
    ConflictError,
    InvalidRequestError,
    LoginFailedError,
    NotFoundError,
)
from securelogin.domain.responses import form_problem
from securelogin.domain.tokens import encode_token
from securelogin.services.attempts import audit, confirm_failure, count_attempt
from securelogin.services.context import Caller, Context
from securelogin.services.device_states import on_permanent_device_active, refresh_devices
from securelogin.services.factor_checks import (
    FORMS,
    challenge_text,
    is_right_device_response,
    new_challenge,
    parse_challenge,
)
from securelogin.services.notifications import notify
from securelogin.services.ports import NewDevice, UnitOfWork

DEVICE_ID_PREFIX = "dev_"
TOTP_SECRET_BYTES = 20  # R5.1: a 160-bit secret
OCRA_KEY_BYTES = 32  # HMAC-SHA256 key of the challenge card (suite HOTP-SHA256)
SERIAL_DIGITS = 10
SERIAL_RETRIES = 20


@dataclass(frozen=True)
class TotpEnrolment:
    device: Device
    secret: str  # base32, shown only at enrolment (R5.1)
    otpauth_uri: str


@dataclass(frozen=True)
class DeviceOrder:
    device: Device
    provisioning: dict[str, Any]  # shown only at ordering (R5.2)


def list_devices(ctx: Context, user: User, caller: Caller) -> list[Device]:
    """The user's devices, auto-activations due applied (R5.4)."""
    with ctx.uow() as uow:
        devices = refresh_devices(ctx, uow, user, ctx.clock.now(), caller)
        uow.commit()
    return devices


def enrol_totp(ctx: Context, user: User, caller: Caller) -> TotpEnrolment:
    """R5.1: a new 160-bit secret, pending until the user types a valid code."""
    now = ctx.clock.now()
    secret = ctx.random.token_bytes(TOTP_SECRET_BYTES)
    device_id = encode_token(DEVICE_ID_PREFIX, ctx.random.token_bytes(32))
    with ctx.uow() as uow:
        serial = _new_serial(ctx, uow, prefix="TOTP")
        uow.devices.add(
            NewDevice(
                device_id,
                user.user_id,
                DeviceKind.TOTP,
                serial,
                DeviceState.PENDING,
                ctx.box.seal(secret, device_id),
                None,
                None,
                now,
                None,
                None,
                caller.actor,
            )
        )
        audit(
            uow,
            now,
            user.username,
            caller,
            "device.enrolment_started",
            "ok",
            {"device_id": device_id, "kind": "totp"},
        )
        device = _get(uow, device_id)
        uow.commit()
    uri = otp.otpauth_uri(secret, account=user.username, issuer=ctx.issuer)
    return TotpEnrolment(device, otp.base32_secret(secret), uri)


def order_device(
    ctx: Context, user: User, *, kind: DeviceKind, pin: str | None, country: str, caller: Caller
) -> DeviceOrder:
    """R5.2/R5.3: a physical device, mailed now; its provisioning is returned once."""
    _check_order(kind, pin, country)
    now = ctx.clock.now()
    device_id = encode_token(DEVICE_ID_PREFIX, ctx.random.token_bytes(32))
    secret, provisioning = _provision(ctx, kind)
    pin_sealed = None
    if kind is DeviceKind.CHALLENGE_CARD and pin is not None:
        pin_sealed = ctx.box.seal(ocra.pin_hash(pin), device_id)
    with ctx.uow() as uow:
        serial = _new_serial(ctx, uow, prefix="")
        uow.devices.add(
            NewDevice(
                device_id,
                user.user_id,
                kind,
                serial,
                DeviceState.MAILED,
                ctx.box.seal(secret, device_id),
                pin_sealed,
                country,
                now,
                now,
                expected_arrival(now, country),
                caller.actor,
            )
        )
        audit(
            uow,
            now,
            user.username,
            caller,
            "device.ordered",
            "mailed",
            {"device_id": device_id, "kind": kind, "country": country, "serial": serial},
        )
        notify(uow, user, "device_ordered", now, f"{kind} {serial[-5:]}")  # R6.7
        device = _get(uow, device_id)
        uow.commit()
    return DeviceOrder(device, provisioning)


def activation_challenge(
    ctx: Context, user: User, device_id: str
) -> tuple[str | None, tuple[int, int] | None]:
    """A fresh challenge for activating this device; replaces any earlier one."""
    with ctx.uow() as uow:
        device = _own_device(uow, user, device_id)
        if device.state not in ACTIVATABLE:
            raise ConflictError(message="This device cannot be activated.")
        code, indices = new_challenge(ctx, device.kind)
        uow.devices.set_activation_challenge(device_id, challenge_text(code, indices))
        uow.commit()
    return code, indices


def activate_device(
    ctx: Context,
    user: User,
    device_id: str,
    *,
    serial: str | None,
    response: str,
    caller: Caller,
) -> Device:
    """R5.4: serial (physical devices) and one valid response to the latest challenge."""
    with ctx.uow() as uow:
        device = _own_device(uow, user, device_id)
    if device.state not in ACTIVATABLE:
        raise ConflictError(message="This device cannot be activated.")
    if device.kind.is_physical and not serial:
        raise InvalidRequestError("Give the serial number printed on the device.", field="serial")
    hint = form_problem(FORMS[device.kind.factor_kind], response)
    if hint:
        raise LoginFailedError(hint=hint)  # R3.6: malformed, not counted
    admission = count_attempt(ctx, user.username, caller, "device.activation")
    now = ctx.clock.now()
    with ctx.uow() as uow:
        uow.lockout.hold(user.username)  # lock order: subject, devices, audit head
        right = _is_right_activation(ctx, uow, device, serial, response)
        if not right or not uow.devices.change_state(
            device_id, DeviceState.ACTIVE, now, allowed_from=ACTIVATABLE
        ):
            confirm_failure(ctx, uow, user.username, admission, caller)
            audit(
                uow,
                now,
                user.username,
                caller,
                "device.activation",
                "login_failed",
                {"device_id": device_id},
            )
            uow.commit()
            raise LoginFailedError()
        uow.lockout.withdraw(user.username, admission)
        audit(
            uow,
            now,
            user.username,
            caller,
            "device.activated",
            "ok",
            {"device_id": device_id, "kind": device.kind},
        )
        notify(uow, user, "device_activated", now, f"{device.kind} {device.serial[-5:]}")  # R6.7
        on_permanent_device_active(ctx, uow, user, now, now)
        activated = _get(uow, device_id)
        uow.commit()
    return activated


def _is_right_activation(
    ctx: Context, uow: UnitOfWork, device: Device, serial: str | None, response: str
) -> bool:
    """Serial matches, and the response answers the latest challenge (taken: one answer)."""
    code, indices = parse_challenge(uow.devices.take_activation_challenge(device.device_id))
    if device.kind.is_physical and (serial != device.serial or (code is None and not indices)):
        return False
    return is_right_device_response(
        ctx,
        uow,
        device.device_id,
        code=code,
        indices=indices,
        response=response,
        now=ctx.clock.now(),
        states=ACTIVATABLE,
    )


def _check_order(kind: DeviceKind, pin: str | None, country: str) -> None:
    if not kind.is_physical:
        raise InvalidRequestError("Only physical devices are ordered.", field="kind")
    if kind is DeviceKind.CHALLENGE_CARD:
        if pin is None or len(pin) != PIN_LENGTH or not (pin.isascii() and pin.isdigit()):
            raise InvalidRequestError("The PIN is 4 digits.", field="pin")
    elif pin is not None:
        raise InvalidRequestError("Only a challenge card has a PIN.", field="pin")
    check_country(country)


def _provision(ctx: Context, kind: DeviceKind) -> tuple[bytes, dict[str, Any]]:
    if kind is DeviceKind.CHALLENGE_CARD:
        key = ctx.random.token_bytes(OCRA_KEY_BYTES)
        return key, {"ocra_suite": ocra.CHALLENGE_CARD_SUITE, "key_hex": key.hex()}
    values = cards.make_card_values(ctx.random.below)
    text = json.dumps({str(k): v for k, v in values.items()})
    return text.encode("ascii"), {"values": {str(k): v for k, v in values.items()}}


def _new_serial(ctx: Context, uow: UnitOfWork, *, prefix: str) -> str:
    for _ in range(SERIAL_RETRIES):
        digits = "".join(str(ctx.random.below(10)) for _ in range(SERIAL_DIGITS))
        serial = prefix + digits
        if not uow.devices.serial_exists(serial):
            return serial
    raise ConflictError(message="Could not allocate a serial number; please retry.")


def _own_device(uow: UnitOfWork, user: User, device_id: str) -> Device:
    device = uow.devices.get(device_id)
    if device is None or device.user_id != user.user_id:
        raise NotFoundError()  # another user's device is "not found", never "forbidden"
    return device


def _get(uow: UnitOfWork, device_id: str) -> Device:
    device = uow.devices.get(device_id)
    if device is None:
        raise NotFoundError()
    return device
