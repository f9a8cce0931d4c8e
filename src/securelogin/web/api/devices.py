"""The user's own security devices (R5)."""

from __future__ import annotations

from typing import Any, Literal

import segno
from fastapi import APIRouter, Request
from pydantic import Field

from securelogin.domain.devices import Device, DeviceKind
from securelogin.services import access, devices
from securelogin.services.sessions import ActiveSession
from securelogin.web.auth import context_of, require_session, user_caller
from securelogin.web.schemas import RESPONSE_MAX, Body

router = APIRouter(prefix="/api/v1")


class ActivationRequest(Body):
    serial: str | None = Field(default=None, max_length=64)
    response: str = Field(max_length=RESPONSE_MAX)


class OrderRequest(Body):
    kind: Literal["challenge_card", "code_card"]
    pin: str | None = Field(default=None, max_length=16)
    country: str = Field(min_length=1, max_length=8)


def device_body(device: Device) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "device_id": device.device_id,
        "kind": str(device.kind),
        "serial": device.serial,
        "state": str(device.state),
        "mailed_at": iso(device.mailed_at),
        "expected_arrival": iso(device.expected_arrival),
        "activated_at": iso(device.activated_at),
    }


def _session_user(request: Request) -> tuple[ActiveSession, Any]:
    session = require_session(request)
    return session, access.user_of(context_of(request), session)


@router.get("/devices")
def list_devices(request: Request) -> dict[str, Any]:
    _session, user = _session_user(request)
    found = devices.list_devices(context_of(request), user, user_caller(request, user.username))
    return {"devices": [device_body(d) for d in found]}


@router.post("/devices/totp", status_code=201)
def enrol_totp(request: Request) -> dict[str, Any]:
    session, user = _session_user(request)
    access.require_security_settings(session)
    enrolment = devices.enrol_totp(context_of(request), user, user_caller(request, user.username))
    qr = segno.make(enrolment.otpauth_uri, error="m")
    return {
        "device_id": enrolment.device.device_id,
        "secret": enrolment.secret,
        "otpauth_uri": enrolment.otpauth_uri,
        "qr_svg": qr.svg_data_uri(scale=4),
        **{"device": device_body(enrolment.device)},
    }


@router.get("/devices/{device_id}/activation")
def activation_challenge(device_id: str, request: Request) -> dict[str, Any]:
    session, user = _session_user(request)
    access.require_activation_right(context_of(request), session)
    code, indices = devices.activation_challenge(context_of(request), user, device_id)
    if code is not None:
        return {"challenge": {"code": code}}
    if indices is not None:
        return {"challenge": {"indices": list(indices)}}
    return {"challenge": None}


@router.post("/devices/{device_id}/activation")
def activate(device_id: str, body: ActivationRequest, request: Request) -> dict[str, Any]:
    session, user = _session_user(request)
    access.require_activation_right(context_of(request), session)
    device = devices.activate_device(
        context_of(request),
        user,
        device_id,
        serial=body.serial,
        response=body.response,
        caller=user_caller(request, user.username),
    )
    return device_body(device)


@router.post("/devices/orders", status_code=201)
def order(body: OrderRequest, request: Request) -> dict[str, Any]:
    session, user = _session_user(request)
    access.require_security_settings(session)
    placed = devices.order_device(
        context_of(request),
        user,
        kind=DeviceKind(body.kind),
        pin=body.pin,
        country=body.country,
        caller=user_caller(request, user.username),
    )
    return {**device_body(placed.device), "provisioning": placed.provisioning}
