"""The online security code card (R7), for full and card_print_only sessions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from securelogin.services import access, online_cards
from securelogin.web.auth import context_of, require_session, user_caller
from securelogin.web.pdf import card_pdf
from securelogin.web.schemas import RESPONSE_MAX, Body

router = APIRouter(prefix="/api/v1")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class CardActivation(Body):
    response: str = Field(max_length=RESPONSE_MAX)


def _user(request: Request) -> Any:
    session = require_session(request)
    access.require_card_access(session)
    return access.user_of(context_of(request), session)


@router.post("/online-card", status_code=201)
def request_card(request: Request, response: Response) -> dict[str, Any]:
    user = _user(request)
    card = online_cards.request_card(context_of(request), user, user_caller(request, user.username))
    response.headers.update(NO_STORE)
    return {
        "card_id": card.card.card_id,
        "issued_at": card.card.issued_at.isoformat(),
        "values": {str(k): v for k, v in sorted(card.values.items())},
        "activation_challenge": {"indices": list(card.activation_indices or ())},
    }


@router.get("/online-card/{card_id}.pdf")
def card_as_pdf(card_id: str, request: Request) -> Response:
    user = _user(request)
    card = online_cards.printable_card(context_of(request), user, card_id[:128])
    return Response(
        card_pdf(card),
        media_type="application/pdf",
        headers={**NO_STORE, "Content-Disposition": 'inline; filename="security-code-card.pdf"'},
    )


@router.get("/online-card/{card_id}/activation")
def activation_challenge(card_id: str, request: Request) -> dict[str, Any]:
    user = _user(request)
    card = online_cards.printable_card(context_of(request), user, card_id[:128])
    return {"challenge": {"indices": list(card.activation_indices or ())}}


@router.post("/online-card/{card_id}/activation")
def activate(card_id: str, body: CardActivation, request: Request) -> dict[str, Any]:
    user = _user(request)
    card = online_cards.activate_card(
        context_of(request), user, card_id[:128], body.response, user_caller(request, user.username)
    )
    expires_at = card.expires_at.isoformat() if card.expires_at else None
    return {"card_id": card.card_id, "expires_at": expires_at}
