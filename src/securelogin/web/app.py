"""The HTTP application: ``create_app(settings)`` builds one; nothing happens at import."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import securelogin
from securelogin.bootstrap import Application, build
from securelogin.config import Settings
from securelogin.web.api import (
    admin,
    agent,
    devices,
    logins,
    online_card,
    public,
    recovery,
    session,
)
from securelogin.web.errors import install_error_handlers
from securelogin.web.limits import BodyLimitMiddleware, refuse_nul_in_address
from securelogin.web.portal import console
from securelogin.web.portal import help as portal_help
from securelogin.web.portal import login as portal_login
from securelogin.web.portal import online_card as portal_online_card
from securelogin.web.portal import security as portal_security
from securelogin.web.portal.pages import SECURITY_HEADERS

STATIC = Path(__file__).resolve().parent / "static"

access_log = logging.getLogger("securelogin.access")


def create_app(settings: Settings, application: Application | None = None) -> FastAPI:
    """An ASGI app on ``application`` (built from ``settings`` when not given)."""
    app_state = application or build(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if application is None:
            app_state.dispose()

    app = FastAPI(
        title="securelogin",
        version=securelogin.__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_nul_in_address)],
    )
    app.state.settings = settings
    app.state.application = app_state
    install_error_handlers(app)
    for module in (public, logins, session, devices, online_card, recovery, agent, admin):
        app.include_router(module.router)
    for page in (portal_login, portal_security, portal_online_card, portal_help, console):
        app.include_router(page.router, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


def app_from_environment() -> FastAPI:
    """The factory ``securelogin serve`` hands to uvicorn (one per worker process)."""
    return create_app(Settings.from_env())


class SecurityHeadersMiddleware:
    """Content-Security-Policy (no inline script), nosniff, no framing, no referrer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AccessLogMiddleware:
    """One line per request: method, route *template*, status, milliseconds.

    Paths are logged as their route templates, never as sent: a login id in a path is a
    capability and does not belong in a log (R9, "never a secret in a log").
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", "(no route)")
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                route,
                status,
                (time.perf_counter() - started) * 1000,
            )
