"""The caller's own session (R4.5, R4.7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from securelogin.services import sessions
from securelogin.web.auth import require_session, user_caller
from securelogin.web.schemas import session_body

router = APIRouter(prefix="/api/v1")


@router.get("/session")
def read_session(request: Request) -> dict[str, Any]:
    active = require_session(request)
    return session_body(active.view, with_token=False)


@router.delete("/session", status_code=204)
def logout(request: Request) -> Response:
    active = require_session(request)
    sessions.end_session(
        request.app.state.application.context, active, user_caller(request, active.view.username)
    )
    return Response(status_code=204)
