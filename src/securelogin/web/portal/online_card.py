"""The online security code card pages (R7), for full and card_print_only sessions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from securelogin.domain.errors import SecureLoginError
from securelogin.services import online_cards
from securelogin.services.online_cards import PrintableCard
from securelogin.web.auth import context_of, user_caller
from securelogin.web.pdf import card_pdf
from securelogin.web.portal.forms import read_form
from securelogin.web.portal.pages import NO_STORE, redirect, render
from securelogin.web.portal.session import SignedIn, signed_in

router = APIRouter()


async def _who(request: Request) -> SignedIn | Response:
    who = await signed_in(request)
    return redirect(request, "/login") if who is None else who


@router.get("/online-card")
async def card_page(request: Request) -> Response:
    who = await _who(request)
    if isinstance(who, Response):
        return who
    return await _render(request, who)


async def _render(
    request: Request,
    who: SignedIn,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    card = await run_in_threadpool(online_cards.current_card, context_of(request), who.user.user_id)
    now = context_of(request).clock.now()
    return render(
        request,
        "online_card.html",
        who=who,
        card=card,
        state=card.state(now) if card else None,
        error=error,
        notice=notice,
        status=status,
    )


@router.post("/online-card")
async def request_card(request: Request) -> Response:
    who = await _who(request)
    if isinstance(who, Response):
        return who
    await read_form(request)
    try:
        printable = await run_in_threadpool(
            online_cards.request_card,
            context_of(request),
            who.user,
            user_caller(request, who.user.username),
        )
    except SecureLoginError as error:
        if error.code == "service_unavailable":
            raise
        return await _render(request, who, error=error.user_message, status=409)
    return render(request, "card.html", who=who, printable=printable, error=None, secret=True)


async def _printable(request: Request, card_id: str) -> PrintableCard | Response:
    """The card's printable values (until activation), or the page to show instead."""
    who = await _who(request)
    if isinstance(who, Response):
        return who
    try:
        return await run_in_threadpool(
            online_cards.printable_card, context_of(request), who.user, card_id[:128]
        )
    except SecureLoginError as error:
        if error.code == "service_unavailable":
            raise
        return await _render(request, who, error=error.user_message, status=404)


@router.get("/online-card/{card_id}/print")
async def print_card(card_id: str, request: Request) -> Response:
    printable = await _printable(request, card_id)
    if isinstance(printable, Response):
        return printable
    who = await _who(request)
    return render(request, "card.html", who=who, printable=printable, error=None, secret=True)


@router.get("/online-card/{card_id}/card.pdf")
async def card_as_pdf(card_id: str, request: Request) -> Response:
    printable = await _printable(request, card_id)
    if isinstance(printable, Response):
        return printable
    return Response(
        card_pdf(printable),
        media_type="application/pdf",
        headers={**NO_STORE, "Content-Disposition": 'inline; filename="security-code-card.pdf"'},
    )


@router.post("/online-card/{card_id}/activate")
async def activate(card_id: str, request: Request) -> Response:
    who = await _who(request)
    if isinstance(who, Response):
        return who
    form = await read_form(request)
    try:
        card = await run_in_threadpool(
            online_cards.activate_card,
            context_of(request),
            who.user,
            card_id[:128],
            form.get("response").strip()[:64],
            user_caller(request, who.user.username),
        )
    except SecureLoginError as error:
        if error.code == "service_unavailable":
            raise
        message = error.user_message + (f" {error.hint}" if error.hint else "")
        return await _render(request, who, error=message, status=400)
    expires = f"{card.expires_at:%Y-%m-%d %H:%M} UTC" if card.expires_at else ""
    return await _render(
        request,
        who,
        notice=f"Your online security code card is active "
        f"until {expires}. Log out and log in again with it for full access.",
    )
