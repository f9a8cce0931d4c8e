"""The Client Services console (R8): staff token sign-in, verification, then help.

The same services as the agent API; the console only renders them. The staff token is
kept in an HttpOnly, SameSite=Strict, Secure cookie for the console's pages, and looked up
on every page, so a token the operator revoked (``securelogin tokens revoke``) is refused
from its next request. It is the agent's own token, the API's too (there is no token per
sign-in): signing out deletes the cookie and does not revoke it (docs/operations.md).
"""

from __future__ import annotations

from functools import partial
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from securelogin.domain.accounts import StaffMember, StaffRole, User
from securelogin.domain.devices import DeviceKind
from securelogin.domain.errors import SecureLoginError, VerificationLockedError
from securelogin.domain.passcodes import full_access_until, portal_access_until
from securelogin.services import admin, helpdesk, verification
from securelogin.services.context import Caller
from securelogin.web.auth import context_of, staff_caller
from securelogin.web.portal.forms import read_form
from securelogin.web.portal.pages import (
    STAFF_COOKIE,
    delete_cookie,
    redirect,
    render,
    set_cookie,
)
from securelogin.web.portal.security import COUNTRIES

router = APIRouter(prefix="/console")
# The console's actions, by the names they are audited under when refused (helpdesk).
ACTIONS = {
    "passcode": helpdesk.ISSUE_PASSCODE,
    "reset-code": helpdesk.GIVE_RESET_CODE,
    "loss": helpdesk.MARK_DEVICE_LOST,
    "order": helpdesk.ORDER_DEVICE,
}


async def _agent(request: Request) -> StaffMember | None:
    token = request.cookies.get(STAFF_COOKIE)
    member = await run_in_threadpool(admin.authenticate_staff, context_of(request), token)
    return member if member is not None and member.role is StaffRole.AGENT else None


@router.get("/login")
def sign_in_page(request: Request) -> Response:
    return render(request, "console/login.html", errors={})


@router.post("/login")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    token = form.get("token").strip()[:128]
    member = await run_in_threadpool(admin.authenticate_staff, context_of(request), token)
    if member is None or member.role is not StaffRole.AGENT:
        return render(
            request,
            "console/login.html",
            status=401,
            errors={"token": "This is not a valid agent token."},
        )
    response = redirect(request, "/console")
    set_cookie(request, response, STAFF_COOKIE, token, max_age=8 * 3600)
    return response


@router.post("/logout")
async def sign_out(request: Request) -> Response:
    await read_form(request)
    response = redirect(request, "/console/login")
    delete_cookie(request, response, STAFF_COOKIE)
    return response


@router.get("")
async def lookup_page(request: Request) -> Response:
    agent = await _agent(request)
    if agent is None:
        return redirect(request, "/console/login")
    return render(request, "console/lookup.html", agent=agent, form={}, errors={})


@router.post("/verifications")
async def start(request: Request) -> Response:
    agent = await _agent(request)
    if agent is None:
        return redirect(request, "/console/login")
    form = await read_form(request)
    lookup = form.get("lookup").strip()[:254]
    by_email = "@" in lookup
    try:
        started = await run_in_threadpool(
            verification.start_verification,
            context_of(request),
            agent,
            username=None if by_email else lookup,
            email=lookup if by_email else None,
            caller=staff_caller(request, agent),
        )
    except SecureLoginError as error:
        return _lookup_again(request, agent, form.kept(), error)
    return render(request, "console/question.html", agent=agent, started=started, errors={})


@router.post("/verifications/{verification_id}/answer")
async def answer(verification_id: str, request: Request) -> Response:
    agent = await _agent(request)
    if agent is None:
        return redirect(request, "/console/login")
    form = await read_form(request)
    try:
        passed = await run_in_threadpool(
            verification.answer_verification,
            context_of(request),
            agent,
            verification_id[:128],
            form.get("answer")[:200],
            staff_caller(request, agent),
        )
    except SecureLoginError as error:
        return _lookup_again(request, agent, {}, error)
    return redirect(
        request, f"/console/callers/{quote(passed.username)}?v={quote(verification_id[:128])}"
    )


@router.get("/callers/{username}")
async def caller_page(
    username: str, request: Request, v: str = "", notice: str | None = None
) -> Response:
    agent = await _agent(request)
    if agent is None:
        return redirect(request, "/console/login")
    try:
        user, until = await run_in_threadpool(
            helpdesk.verified_user_until,
            context_of(request),
            agent,
            v[:128],
            username,
            staff_caller(request, agent),
            helpdesk.VIEW_CALLER,
        )
        summary = await run_in_threadpool(
            helpdesk.summarise, context_of(request), user, staff_caller(request, agent)
        )
    except SecureLoginError as error:
        return _lookup_again(request, agent, {}, error)
    return render(
        request,
        "console/caller.html",
        agent=agent,
        summary=summary,
        v=v,
        until=until,
        countries=COUNTRIES,
        notice=notice,
        errors={},
        full_access_until=full_access_until,
        portal_access_until=portal_access_until,
    )


@router.post("/callers/{username}/actions/{action}")
async def act(username: str, action: str, request: Request) -> Response:
    agent = await _agent(request)
    if agent is None:
        return redirect(request, "/console/login")
    form = await read_form(request)
    v = form.get("v")[:128]
    ctx, caller = context_of(request), staff_caller(request, agent)
    try:
        asked = ACTIONS.get(action, helpdesk.VIEW_CALLER)  # unknown: back to the caller page
        user = await run_in_threadpool(
            helpdesk.verified_user, ctx, agent, v, username, caller, asked
        )
        if action == "passcode":
            issued = await run_in_threadpool(helpdesk.issue_temporary_passcode, ctx, user, caller)
            return render(
                request,
                "console/issued.html",
                agent=agent,
                v=v,
                user=user,
                passcode=issued.passcode,
                issued_at=issued.issued_at,
                full_until=full_access_until(issued.issued_at),
                portal_until=portal_access_until(issued.issued_at),
                secret=True,
            )
        if action == "reset-code":
            code, expires_at = await run_in_threadpool(helpdesk.give_reset_code, ctx, user, caller)
            return render(
                request,
                "console/issued.html",
                agent=agent,
                v=v,
                user=user,
                reset_code=code,
                expires_at=expires_at,
                secret=True,
            )
        if action == "loss":
            await run_in_threadpool(
                helpdesk.mark_device_lost,
                ctx,
                user,
                form.get("device_id")[:64],
                form.get("reason")[:16],
                caller,
            )
            return _back(request, username, v, "The device is marked and will never work again.")
        if action == "order":
            return await _order(request, form.values, user, v, caller, agent)
    except SecureLoginError as error:
        return _lookup_again(request, agent, {}, error)
    return redirect(request, f"/console/callers/{quote(username)}?v={quote(v)}")


async def _order(
    request: Request, values: dict[str, str], user: User, v: str, caller: Caller, agent: StaffMember
) -> Response:
    kind = values.get("kind", "")
    if kind not in ("challenge_card", "code_card"):
        return _back(request, user.username, v, "Choose a device.")
    if kind == "challenge_card" and values.get("pin") != values.get("pin_again"):
        return _back(request, user.username, v, "The two PINs are not the same.")
    placed = await run_in_threadpool(
        partial(
            helpdesk.order_replacement,
            context_of(request),
            user,
            kind=DeviceKind(kind),
            pin=values.get("pin") if kind == "challenge_card" else None,
            country=values.get("country", "")[:8],
            caller=caller,
        )
    )
    arrival = placed.device.expected_arrival
    return _back(
        request,
        user.username,
        v,
        f"Ordered: serial {placed.device.serial}, expected by {arrival:%Y-%m-%d}."
        if arrival
        else "Ordered.",
    )


def _back(request: Request, username: str, v: str, notice: str) -> Response:
    return redirect(
        request, f"/console/callers/{quote(username)}?v={quote(v)}&notice={quote(notice)}"
    )


def _lookup_again(
    request: Request, agent: StaffMember, kept: dict[str, str], error: SecureLoginError
) -> Response:
    message = error.user_message
    if isinstance(error, VerificationLockedError):
        message += f" ({error.locked_until:%Y-%m-%d %H:%M} UTC)"
    status = {
        "not_found": 404,
        "verification_failed": 403,
        "verification_required": 403,
        "verification_locked": 423,
        "conflict": 409,
    }.get(error.code, 400)
    return render(
        request,
        "console/lookup.html",
        agent=agent,
        form=kept,
        errors={"lookup": message},
        status=status,
    )
