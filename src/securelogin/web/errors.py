"""The one translation of errors to HTTP: status table, JSON body, handlers.

No reply ever holds a stack trace or the input that was refused.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from securelogin.domain.errors import SecureLoginError, TooManyRequestsError
from securelogin.web.portal.pages import render

log = logging.getLogger("securelogin.web")

STATUS: dict[str, int] = {
    "bad_character": 400,
    "invalid_request": 422,
    "invalid_credentials": 401,
    "login_failed": 401,
    "login_expired": 410,
    "account_locked": 423,
    "no_usable_second_factor": 403,
    "platform_not_permitted": 403,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "verification_required": 403,
    "verification_failed": 403,
    "verification_locked": 423,
    "consecutive_temporary_passcode": 409,
    "conflict": 409,
    "too_many_requests": 429,
    "service_unavailable": 503,
}

HTTP_CODES: dict[int, tuple[str, str]] = {
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "This method is not allowed here."),
    408: ("request_timeout", "The request body did not arrive in time."),
    413: ("payload_too_large", "The request body is too large."),
}


def error_body(code: str, message: str, hint: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if hint:
        error["hint"] = hint
    error.update({key: value for key, value in extra.items() if value is not None})
    return {"error": error}


def error_response(error: SecureLoginError) -> JSONResponse:
    headers = {}
    if isinstance(error, TooManyRequestsError):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if error.code == "unauthenticated":
        headers["WWW-Authenticate"] = "Bearer"
    body = error_body(error.code, error.user_message, error.hint, **error.extra_fields())
    return JSONResponse(body, status_code=STATUS.get(error.code, 400), headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SecureLoginError, _on_refusal)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_bug)


def wants_page(request: Request) -> bool:
    """Pages of the portal and the console get HTML errors; the API gets JSON."""
    path = request.url.path
    return not (path.startswith("/api/") or path in ("/healthz", "/openapi.json"))


def page_error(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", status=status, title=title, message=message)


async def _on_refusal(request: Request, error: SecureLoginError) -> Response:
    if wants_page(request):
        status = STATUS.get(error.code, 400)
        return page_error(
            request, status, "Not allowed" if status == 403 else "Sorry", error.user_message
        )
    return error_response(error)


async def _on_invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0] if error.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
    if first.get("type") == "json_invalid":
        return JSONResponse(error_body("invalid_request", "The body is not valid JSON."), 422)
    field = ".".join(location) or None
    message = _validation_message(first.get("type", ""), field)
    return JSONResponse(error_body("invalid_request", message, field=field), status_code=422)


def _validation_message(kind: str, field: str | None) -> str:
    if field is None:
        return "The body is not a JSON object of the expected form."
    name = field
    if kind == "missing":
        return f"The field {name} is required."
    if kind in ("string_too_long", "string_too_short", "too_long", "too_short"):
        return f"The field {name} has the wrong length."
    if kind == "literal_error":
        return f"The field {name} has a value that is not allowed."
    return f"The field {name} is not valid."


async def _on_http(request: Request, error: StarletteHTTPException) -> Response:
    if wants_page(request) and error.status_code in (404, 405):
        return page_error(
            request, error.status_code, "Page not found", "There is no such page here."
        )
    if error.status_code == 400:  # FastAPI could not decode the body (e.g. not UTF-8)
        return JSONResponse(error_body("invalid_request", "The body is not valid JSON."), 422)
    code, message = HTTP_CODES.get(error.status_code, ("error", "The request was refused."))
    return JSONResponse(
        error_body(code, message), status_code=error.status_code, headers=error.headers
    )


def log_bug(method: str, route: str, error: BaseException) -> None:
    """A bug of ours in the log, on one line like every other: the exception's type and
    where it was raised (each frame's file, line and function, outermost first), never its
    message or any value, which can hold what the client sent (a password)."""
    frames = " > ".join(
        f"{frame.filename}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(error.__traceback__)
    )
    log.error("internal error on %s %s: %s at %s", method, route, type(error).__name__, frames)


async def _on_bug(request: Request, error: Exception) -> Response:
    log_bug(request.method, _route_of(request), error)
    if wants_page(request):
        return page_error(
            request,
            500,
            "Something went wrong",
            "Something went wrong on our side. Please try again.",
        )
    return internal_error_response()


def internal_error_response() -> JSONResponse:
    """The API's reply to a bug of ours: no detail."""
    return JSONResponse(error_body("internal_error", "Something went wrong on our side."), 500)


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "?")
