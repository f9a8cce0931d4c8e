"""The caller's own session (R4.5, R4.7)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from securelogin.services import sessions
from securelogin.web.auth import context_of, require_session, user_caller
from securelogin.web.json_route import JsonBodyRoute
from securelogin.web.offload import run_blocking
from securelogin.web.schemas import session_body

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)


@router.get("/session")
async def read_session(request: Request) -> JSONResponse:
    active = await run_blocking(request, require_session, request)
    return JSONResponse(session_body(active.view, with_token=False))


@router.delete("/session", status_code=204)
async def logout(request: Request) -> Response:
    active = await run_blocking(request, require_session, request)
    caller = user_caller(request, active.view.username)
    await run_blocking(request, sessions.end_session, context_of(request), active, caller)
    return Response(status_code=204)
