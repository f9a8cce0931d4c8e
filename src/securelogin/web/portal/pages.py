"""Server-rendered pages: templates, cookies, CSRF and the security headers.

- Cookies are ``HttpOnly``, ``SameSite=Strict`` and ``Secure``, but on plain http to a
  loopback name by default (``SECURELOGIN_COOKIE_SECURE``, web/transport.py).
- CSRF: a random token in a cookie (``sl_csrf``) that every form must echo in a hidden
  field (double submit); with SameSite=Strict cookies a forged or missing one gets 403.
- No inline script anywhere; the Content-Security-Policy forbids it.
- Pages that show a secret (QR code, card values, passcodes) are sent ``no-store``.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from securelogin.domain.errors import ForbiddenError
from securelogin.web.transport import secure_transport

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
SESSION_COOKIE = "sl_session"
LOGIN_COOKIE = "sl_login"
STAFF_COOKIE = "sl_staff"
CSRF_COOKIE = "sl_csrf"
CSRF_FIELD = "csrf"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

environment = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def csrf_token(request: Request) -> str:
    """The page's CSRF token: the cookie's, or a new one (set by ``render``)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if len(existing) == 43:
        return existing
    token: str = request.state.__dict__.setdefault("new_csrf", secrets.token_urlsafe(32))
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """The form's token must be the cookie's. Ours are ASCII (``token_urlsafe``): anything
    else is forged, and is refused before ``compare_digest``, which takes only ASCII str."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if (
        not cookie
        or not submitted
        or not (cookie.isascii() and submitted.isascii())
        or not hmac.compare_digest(cookie.encode("ascii"), submitted.encode("ascii"))
    ):
        raise ForbiddenError(
            message="This form has expired or did not come from us. "
            "Please go back, reload the page and try again."
        )


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    secret: bool = False,
    **values: Any,
) -> HTMLResponse:
    html = environment.get_template(template).render(
        request=request, csrf=csrf_token(request), **values
    )
    response = HTMLResponse(html, status_code=status, headers=NO_STORE if secret else None)
    _set_new_csrf(request, response)
    return response


def redirect(request: Request, path: str) -> RedirectResponse:
    response = RedirectResponse(path, status_code=303)
    _set_new_csrf(request, response)
    return response


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_transport(request.scope, request.app.state.settings),
    )


def delete_cookie(request: Request, response: Response, name: str) -> None:
    """Ended with the attributes it was set with (a browser may keep a Secure cookie
    that a reply without Secure tries to end)."""
    response.delete_cookie(
        name,
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_transport(request.scope, request.app.state.settings),
    )


def _set_new_csrf(request: Request, response: Response) -> None:
    new = request.state.__dict__.get("new_csrf")
    if new:
        set_cookie(request, response, CSRF_COOKIE, new)
