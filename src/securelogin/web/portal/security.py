"""The Secure Login System page: devices, enrolment, activation, ordering (R5)."""

from __future__ import annotations

import segno
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from securelogin.domain.devices import ACTIVATABLE, DeviceKind
from securelogin.domain.errors import SecureLoginError
from securelogin.services import access, devices
from securelogin.web.auth import context_of, user_caller
from securelogin.web.portal.forms import read_form
from securelogin.web.portal.pages import redirect, render
from securelogin.web.portal.session import SignedIn, signed_in

router = APIRouter()
COUNTRIES = [
    ("US", "United States"),
    ("GB", "United Kingdom"),
    ("DE", "Germany"),
    ("FR", "France"),
    ("CH", "Switzerland"),
    ("CA", "Canada"),
    ("IN", "India"),
    ("HK", "Hong Kong"),
    ("JP", "Japan"),
    ("AU", "Australia"),
]


async def _full(request: Request) -> SignedIn | Response:
    who = await signed_in(request)
    if who is None:
        return redirect(request, "/login")
    if who.restricted:
        return redirect(request, "/online-card")
    return who


@router.get("/security")
async def security_page(request: Request) -> Response:
    who = await _full(request)
    if isinstance(who, Response):
        return who
    return await _render_security(request, who)


async def _render_security(
    request: Request,
    who: SignedIn,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    found = await run_in_threadpool(
        devices.list_devices, context_of(request), who.user, user_caller(request, who.user.username)
    )
    return render(
        request,
        "security.html",
        who=who,
        devices=found,
        activatable=ACTIVATABLE,
        countries=COUNTRIES,
        errors=errors or {},
        form=form or {},
        notice=notice,
        status=status,
    )


@router.post("/security/totp")
async def enrol_totp(request: Request) -> Response:
    who = await _full(request)
    if isinstance(who, Response):
        return who
    await read_form(request)
    try:
        access.require_security_settings(who.session)
        enrolment = await run_in_threadpool(
            devices.enrol_totp,
            context_of(request),
            who.user,
            user_caller(request, who.user.username),
        )
    except SecureLoginError as error:
        return await _render_security(request, who, errors={"totp": error.user_message}, status=403)
    qr = segno.make(enrolment.otpauth_uri, error="m").svg_data_uri(
        scale=5, dark="#000", light="#fff"
    )
    return render(request, "totp.html", who=who, enrolment=enrolment, qr=qr, errors={}, secret=True)


@router.get("/security/devices/{device_id}/activate")
async def activation_page(device_id: str, request: Request) -> Response:
    who = await _full(request)
    if isinstance(who, Response):
        return who
    try:
        access.require_activation_right(context_of(request), who.session)
        code, indices = await run_in_threadpool(
            devices.activation_challenge, context_of(request), who.user, device_id[:64]
        )
    except SecureLoginError as error:
        return await _render_security(
            request,
            who,
            errors={"activate": error.user_message},
            status=404 if error.code == "not_found" else 409,
        )
    found = [
        d
        for d in await run_in_threadpool(
            devices.list_devices,
            context_of(request),
            who.user,
            user_caller(request, who.user.username),
        )
        if d.device_id == device_id
    ]
    return render(
        request,
        "activate.html",
        who=who,
        device=found[0],
        code=code,
        indices=indices,
        errors={},
        form={},
    )


@router.post("/security/devices/{device_id}/activate")
async def activate(device_id: str, request: Request) -> Response:
    who = await _full(request)
    if isinstance(who, Response):
        return who
    form = await read_form(request)
    try:
        access.require_activation_right(context_of(request), who.session)
        await run_in_threadpool(
            devices.activate_device,
            context_of(request),
            who.user,
            device_id[:64],
            serial=form.get("serial").strip()[:64] or None,
            response=form.get("response").strip()[:64],
            caller=user_caller(request, who.user.username),
        )
    except SecureLoginError as error:
        message = error.user_message + (f" {error.hint}" if error.hint else "")
        if error.code == "service_unavailable":
            raise
        return await _render_security(request, who, errors={"activate": message}, status=400)
    if await signed_in(request) is None:  # R5.5: a temporary credential's session ended
        return redirect(request, "/login?message=device_active")
    return await _render_security(request, who, notice="Your device is active.")


@router.post("/security/orders")
async def order(request: Request) -> Response:
    who = await _full(request)
    if isinstance(who, Response):
        return who
    form = await read_form(request)
    kind = form.get("kind")
    pin, again = form.get("pin"), form.get("pin_again")
    errors: dict[str, str] = {}
    if kind not in ("challenge_card", "code_card"):
        errors["kind"] = "Choose a challenge card or a code card."
    if kind == "challenge_card" and pin != again:
        errors["pin_again"] = "The two PINs are not the same."
    if errors:
        return await _render_security(
            request, who, errors=errors, form=form.kept("pin", "pin_again"), status=400
        )
    try:
        access.require_security_settings(who.session)
        placed = await run_in_threadpool(
            devices.order_device,
            context_of(request),
            who.user,
            kind=DeviceKind(kind),
            pin=pin[:16] if kind == "challenge_card" else None,
            country=form.get("country")[:8],
            caller=user_caller(request, who.user.username),
        )
    except SecureLoginError as error:
        field = getattr(error, "field", None) or "kind"
        if error.code == "service_unavailable":
            raise
        return await _render_security(
            request,
            who,
            errors={field: error.user_message},
            form=form.kept("pin", "pin_again"),
            status=400,
        )
    return render(request, "ordered.html", who=who, placed=placed, secret=True)
