"""Client Services (agent token): verification first, then help (R8)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from securelogin.domain.accounts import StaffMember, StaffRole, User
from securelogin.domain.devices import DeviceKind
from securelogin.domain.passcodes import full_access_until, portal_access_until
from securelogin.services import helpdesk, verification
from securelogin.services.context import Caller
from securelogin.web.api.devices import device_body
from securelogin.web.auth import context_of, require_staff, staff_caller
from securelogin.web.schemas import Body

router = APIRouter(prefix="/api/v1/agent")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class StartVerification(Body):
    username: str | None = Field(default=None, min_length=1, max_length=64)
    email: str | None = Field(default=None, min_length=1, max_length=254)


class Answer(Body):
    answer: str = Field(min_length=1, max_length=200)


class Verified(Body):
    verification_id: str | None = Field(default=None, max_length=128)


class Loss(Verified):
    reason: Literal["lost", "damaged"]


class Order(Verified):
    kind: Literal["challenge_card", "code_card"]
    pin: str | None = Field(default=None, max_length=16)
    country: str = Field(min_length=1, max_length=8)


def _agent(request: Request) -> tuple[StaffMember, Caller]:
    agent = require_staff(request, StaffRole.AGENT)
    return agent, staff_caller(request, agent)


def _verified(
    request: Request, verification_id: str | None, username: str, action: str
) -> tuple[User, Caller]:
    """The verified user; a refusal is audited as ``action`` (helpdesk's names)."""
    agent, caller = _agent(request)
    user = helpdesk.verified_user(
        context_of(request), agent, verification_id, username, caller, action
    )
    return user, caller


@router.post("/verifications", status_code=201)
def start(body: StartVerification, request: Request) -> dict[str, str]:
    agent, caller = _agent(request)
    started = verification.start_verification(
        context_of(request), agent, username=body.username, email=body.email, caller=caller
    )
    return {"verification_id": started.verification_id, "question": started.question}


@router.post("/verifications/{verification_id}/answer")
def answer(verification_id: str, body: Answer, request: Request) -> dict[str, Any]:
    agent, caller = _agent(request)
    passed = verification.answer_verification(
        context_of(request), agent, verification_id, body.answer, caller
    )
    return {
        "verified": True,
        "username": passed.username,
        "expires_at": passed.expires_at.isoformat(),
    }


@router.get("/users/{username}")
def caller_summary(
    username: str,
    request: Request,
    verification_id: str | None = Query(default=None, max_length=128),
) -> dict[str, Any]:
    user, caller = _verified(request, verification_id, username, helpdesk.VIEW_CALLER)
    summary = helpdesk.summarise(context_of(request), user, caller)
    passcode = None
    if summary.passcode is not None:
        issued = summary.passcode.issued_at
        passcode = {
            "issued_at": issued.isoformat(),
            "full_access_until": full_access_until(issued).isoformat(),
            "portal_access_until": portal_access_until(issued).isoformat(),
        }
    card = None
    if summary.online_card is not None:
        now = context_of(request).clock.now()
        expires = summary.online_card.expires_at
        card = {
            "card_id": summary.online_card.card_id,
            "state": str(summary.online_card.state(now)),
            "expires_at": expires.isoformat() if expires else None,
        }
    locked = summary.locked_until.isoformat() if summary.locked_until else None
    return {
        "username": summary.username,
        "locked_until": locked,
        "devices": [device_body(d) for d in summary.devices],
        "temporary_passcode": passcode,
        "online_card": card,
    }


@router.post("/users/{username}/temporary-passcode", status_code=201)
def issue_passcode(
    username: str, body: Verified, request: Request, response: Response
) -> dict[str, str]:
    user, caller = _verified(request, body.verification_id, username, helpdesk.ISSUE_PASSCODE)
    issued = helpdesk.issue_temporary_passcode(context_of(request), user, caller)
    response.headers.update(NO_STORE)
    return {
        "passcode": issued.passcode,
        "issued_at": issued.issued_at.isoformat(),
        "full_access_until": full_access_until(issued.issued_at).isoformat(),
        "portal_access_until": portal_access_until(issued.issued_at).isoformat(),
    }


@router.post("/users/{username}/password-reset-code", status_code=201)
def reset_code(
    username: str, body: Verified, request: Request, response: Response
) -> dict[str, str]:
    user, caller = _verified(request, body.verification_id, username, helpdesk.GIVE_RESET_CODE)
    code, expires_at = helpdesk.give_reset_code(context_of(request), user, caller)
    response.headers.update(NO_STORE)
    return {"reset_code": code, "expires_at": expires_at.isoformat()}


@router.post("/devices/{device_id}/loss")
def mark_lost(device_id: str, body: Loss, request: Request) -> dict[str, Any]:
    agent, caller = _agent(request)
    user = helpdesk.verified_device_owner(
        context_of(request), agent, body.verification_id, device_id, caller
    )
    device = helpdesk.mark_device_lost(context_of(request), user, device_id, body.reason, caller)
    return device_body(device)


@router.post("/users/{username}/device-orders", status_code=201)
def order(username: str, body: Order, request: Request, response: Response) -> dict[str, Any]:
    user, caller = _verified(request, body.verification_id, username, helpdesk.ORDER_DEVICE)
    placed = helpdesk.order_replacement(
        context_of(request),
        user,
        kind=DeviceKind(body.kind),
        pin=body.pin,
        country=body.country,
        caller=caller,
    )
    response.headers.update(NO_STORE)
    return {**device_body(placed.device), "provisioning": placed.provisioning}
