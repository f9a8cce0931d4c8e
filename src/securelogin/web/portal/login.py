"""The Client Portal's login pages (R4): username and password, then the second factor."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from securelogin.domain.errors import (
    AccountLockedError,
    LoginExpiredError,
    LoginFailedError,
    SecureLoginError,
)
from securelogin.domain.sessions import Access, Platform
from securelogin.services import login, login_response, sessions
from securelogin.web.auth import context_of, user_caller
from securelogin.web.errors import STATUS
from securelogin.web.portal.forms import read_form
from securelogin.web.portal.pages import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    delete_cookie,
    redirect,
    render,
    set_cookie,
)
from securelogin.web.schemas import LOGIN_USERNAME_MAX

router = APIRouter()
PASSWORD_MAX = 1024
# As the API's login body (schemas.LoginRequest): a NUL in the username is BAD CHARACTER
# (R1.3, not a login attempt), one in a password is a wrong password like any other.
LOGIN_NUL_ANSWERED_BY_RULES = frozenset({"username", "password"})


@router.get("/")
def home(request: Request) -> Response:
    return redirect(request, "/security" if request.cookies.get(SESSION_COOKIE) else "/login")


@router.get("/login")
def login_page(request: Request, message: str | None = None) -> Response:
    notices = {
        "expired": "Your login took too long or was already used. Please start again.",
        "failed": "Login failed. Please start again.",
        "logged_out": "You have logged out.",
        # security.activate sends here when activating a device ended this session (R5.5)
        "device_active": "Your device is active. Your temporary passcode and online card "
        "no longer work: log in again with your device.",
    }
    return render(request, "login.html", form={}, errors={}, notice=notices.get(message or ""))


@router.post("/login")
async def submit_login(request: Request) -> Response:
    form = await read_form(request, nul_answered_by_rules=LOGIN_NUL_ANSWERED_BY_RULES)
    username = form.require("username", "user name", LOGIN_USERNAME_MAX)
    password = form.require("password", "password", PASSWORD_MAX)
    if form.errors:
        return _login_again(request, form.kept("password"), form.errors)
    try:
        outcome = await run_in_threadpool(
            login.start_login,
            context_of(request),
            username=username,
            password=password,
            platform=Platform.PORTAL,
            caller=user_caller(request),
        )
    except AccountLockedError as error:
        return _login_again(request, form.kept("password"), {}, locked_until=error.locked_until)
    except SecureLoginError as error:
        return _login_again(
            request,
            form.kept("password"),
            {"username": error.user_message},
            hint=error.hint,
            status=_status(error),
        )
    if isinstance(outcome, login.LoggedIn):
        return _signed_in(request, outcome)
    response = redirect(request, "/login/verify")
    set_cookie(request, response, LOGIN_COOKIE, outcome.login_id, max_age=300)
    return response


@router.get("/login/verify")
def verify_page(request: Request) -> Response:
    attempt = login_response.open_attempt(
        context_of(request), request.cookies.get(LOGIN_COOKIE, "")
    )
    if attempt is None:
        return redirect(request, "/login?message=expired")
    return render(
        request,
        "verify.html",
        factors=attempt.factors,
        errors={},
        hint=None,
        chosen=None,
        expires_at=attempt.expires_at,
    )


@router.post("/login/verify")
async def submit_response(request: Request) -> Response:
    form = await read_form(request)
    login_id = request.cookies.get(LOGIN_COOKIE, "")
    factor_id = form.get("factor_id")[:128]
    response_text = form.get("response").strip()[:64] if len(form.get("response")) < 200 else ""
    try:
        outcome = await run_in_threadpool(
            login_response.answer_second_factor,
            context_of(request),
            login_id=login_id,
            factor_id=factor_id,
            response=response_text,
            caller=user_caller(request),
        )
    except LoginFailedError as error:
        if error.hint:  # malformed: not counted, the same login goes on
            attempt = login_response.open_attempt(context_of(request), login_id)
            if attempt is not None:
                return render(
                    request,
                    "verify.html",
                    factors=attempt.factors,
                    errors={factor_id: error.user_message},
                    hint=error.hint,
                    chosen=factor_id,
                    expires_at=attempt.expires_at,
                    status=401,
                )
        return redirect(request, "/login?message=failed")
    except LoginExpiredError:
        return redirect(request, "/login?message=expired")
    except AccountLockedError as error:
        return _login_again(request, {}, {}, locked_until=error.locked_until)
    return _signed_in(request, outcome)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await read_form(request)
    token = request.cookies.get(SESSION_COOKIE)
    try:
        active = await run_in_threadpool(sessions.authenticate_session, context_of(request), token)
        await run_in_threadpool(
            sessions.end_session,
            context_of(request),
            active,
            user_caller(request, active.view.username),
        )
    except SecureLoginError:
        pass  # already gone
    response = redirect(request, "/login?message=logged_out")
    delete_cookie(request, response, SESSION_COOKIE)
    return response


def _signed_in(request: Request, outcome: login.LoggedIn) -> Response:
    session = outcome.session
    target = "/online-card" if session.access is Access.CARD_PRINT_ONLY else "/security"
    response = redirect(request, target)
    set_cookie(request, response, SESSION_COOKIE, session.token or "")
    delete_cookie(request, response, LOGIN_COOKIE)
    return response


def _login_again(
    request: Request,
    kept: dict[str, str],
    errors: dict[str, str],
    *,
    hint: str | None = None,
    locked_until: object = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "login.html",
        form=kept,
        errors=errors,
        hint=hint,
        locked_until=locked_until,
        status=423 if locked_until else status,
    )


def _status(error: SecureLoginError) -> int:
    return STATUS.get(error.code, 400)
