"""Public endpoints: health and the security question pools."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from securelogin.domain.security_questions import QUESTION_POOLS
from securelogin.web.errors import error_body

router = APIRouter()


@router.get("/healthz")
def health(request: Request) -> JSONResponse:
    if request.app.state.application.database_is_reachable():
        return JSONResponse({"status": "ok"})
    return JSONResponse(
        error_body("service_unavailable", "The database cannot be reached."), status_code=503
    )


@router.get("/api/v1/security-questions")
def security_questions() -> dict[str, list[list[str]]]:
    return {"pools": [list(pool) for pool in QUESTION_POOLS]}
