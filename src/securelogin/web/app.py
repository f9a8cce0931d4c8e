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
from securelogin.bootstrap import Application, build, process_hash_concurrency
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
from securelogin.web.errors import install_error_handlers, internal_error_response, log_bug
from securelogin.web.limits import (
    ClientGoneError,
    read_whole_body,
    refuse_nul_in_address,
    replaying,
)
from securelogin.web.offload import install_worker_threads, worker_threads_for
from securelogin.web.portal import console
from securelogin.web.portal import help as portal_help
from securelogin.web.portal import login as portal_login
from securelogin.web.portal import online_card as portal_online_card
from securelogin.web.portal import security as portal_security
from securelogin.web.portal.pages import SECURITY_HEADERS
from securelogin.web.transport import HSTS_HEADER, secure_transport

STATIC = Path(__file__).resolve().parent / "static"

access_log = logging.getLogger("securelogin.access")


def create_app(settings: Settings, application: Application | None = None) -> FastAPI:
    """An ASGI app on ``application`` (built from ``settings`` when not given)."""
    app_state = application or build(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        worker_threads.shutdown(wait=False)
        if application is None:
            app_state.dispose()

    app = _SecureLoginAPI(
        title="securelogin",
        version=securelogin.__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_nul_in_address)],
        # FastAPI's own OpenTelemetry spans and metrics record each request's path as sent,
        # and a path can hold a capability (a login id); it also asks the global providers
        # on every request whether anyone listens. Off: the audit log and the access log
        # (route templates only) are the record.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.application = app_state
    worker_threads = install_worker_threads(
        app, worker_threads_for(process_hash_concurrency(settings))
    )
    install_error_handlers(app)
    for module in (public, logins, session, devices, online_card, recovery, agent, admin):
        app.include_router(module.router)
    for page in (portal_login, portal_security, portal_online_card, portal_help, console):
        app.include_router(page.router, include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


class _SecureLoginAPI(FastAPI):
    """FastAPI with ``EdgeMiddleware`` outermost, around the layers Starlette and FastAPI
    put first. A middleware added with ``add_middleware`` runs inside Starlette's
    ``ServerErrorMiddleware``, which sends the reply to an unexpected error (web/errors.py,
    ``_on_bug``) on the connection's own ``send``: that 500 would leave without the
    security headers, and the access line would not see it."""

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        return EdgeMiddleware(super().build_middleware_stack(), settings=settings)


def app_from_environment() -> FastAPI:
    """The factory ``securelogin serve`` hands to uvicorn (one per worker process)."""
    log_to_stderr_unless_configured()
    return create_app(Settings.from_env())


def log_to_stderr_unless_configured() -> None:
    """securelogin's own log lines (the access line, INFO) on stderr, one per line, UTC.

    uvicorn configures its own loggers only: without this, a line of ours would reach no
    handler but Python's last resort, which drops everything below WARNING, and the server
    would write no access line at all. An operator who configured logging (a handler on
    the root logger or on ``securelogin``) keeps that configuration instead."""
    ours = logging.getLogger("securelogin")
    if ours.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    ours.addHandler(handler)
    if ours.level == logging.NOTSET:
        ours.setLevel(logging.INFO)


class EdgeMiddleware:
    """What every HTTP request gets, in one layer (each ASGI layer costs every request a
    call and a wrapped ``send``):

    - its body read whole first, within bounds (web/limits.py: 413, 408);
    - the security headers on its reply: Content-Security-Policy (no inline script),
      nosniff, no framing, no referrer; ``Strict-Transport-Security`` when the reply goes
      out over HTTPS as web/transport.py decides (as its cookies' ``Secure``); and, but
      for the static files, ``Cache-Control: no-store``;
    - one access log line: method, route *template*, status, milliseconds. Paths are
      logged as their route templates, never as sent: a login id in a path is a
      capability and does not belong in a log (R9, "never a secret in a log").

    A body refused (413, 408) gets the headers and the line too, with "(no route)": a
    flood of slow or oversized bodies shows in the log. A request whose client left before
    its body was whole is not passed on, and its line says 499 (nginx's "client closed
    request"), as nothing was answered.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings, timeout: float = 10.0) -> None:
        self.app = app
        self.settings = settings
        self.max_bytes = settings.max_body_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        answered = False

        edge_headers = _EDGE_HEADERS[
            scope["path"].startswith("/static/"), secure_transport(scope, self.settings)
        ]

        async def send_with_headers(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in edge_headers if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        try:
            body = await read_whole_body(
                scope, receive, send_with_headers, max_bytes=self.max_bytes, timeout=self.timeout
            )
            if body is not None:
                await self.app(scope, replaying(body, receive), send_with_headers)
        except ClientGoneError:  # only ``read_whole_body`` raises it
            status = CLIENT_CLOSED_REQUEST
        except Exception as error:
            # A bug of ours. It stops here: raised on, uvicorn would log it whole, message
            # included, and a message can hold what the client sent. Starlette has answered
            # it 500 and web/errors.py has logged it (its type and frames); a bug that kept
            # even that from answering (one in this layer) is logged the same way here and
            # answered here, with the headers (uvicorn's own 500 would have none).
            if not answered:
                log_bug(scope["method"], _route(scope), error)
                await _answer_bug(scope, receive, send_with_headers)
        finally:
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                _route(scope),
                status,
                (time.perf_counter() - started) * 1000,
            )


async def _answer_bug(scope: Scope, receive: Receive, send: Send) -> None:
    """The API's 500 (JSON), for a bug that no handler could answer; nothing if the client
    has gone meanwhile. Nothing raised here leaves the edge either (uvicorn would log it
    whole): a failure to answer is logged like the bug itself."""
    try:
        await internal_error_response()(scope, receive, send)
    except OSError:
        pass  # the connection is gone: nobody to answer
    except Exception as error:
        log_bug(scope["method"], _route(scope), error)


def _route(scope: Scope) -> str:
    return getattr(scope.get("route"), "path", "(no route)")


CLIENT_CLOSED_REQUEST = 499  # logged only: nothing is sent to a client that left

_SECURITY_HEADERS = [
    (name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
]
# Every reply but the static files' is kept out of caches: replies carry session tokens,
# device secrets and card values, and pages what a client saw while logged in.
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
# By (a static file, sent over HTTPS): never changed, only read.
_EDGE_HEADERS = {
    (False, False): _SECURITY_HEADERS + _NO_STORE,
    (False, True): [*_SECURITY_HEADERS, *_NO_STORE, HSTS_HEADER],
    (True, False): _SECURITY_HEADERS,
    (True, True): [*_SECURITY_HEADERS, HSTS_HEADER],
}
