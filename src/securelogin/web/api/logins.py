"""Login (R4): step one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from securelogin.domain.login import OfferedFactor
from securelogin.domain.sessions import Platform
from securelogin.services import login, login_response
from securelogin.web.auth import context_of, user_caller
from securelogin.web.json_route import JsonBodyRoute
from securelogin.web.offload import run_blocking
from securelogin.web.schemas import LoginRequest, ResponseRequest, session_body

router = APIRouter(prefix="/api/v1", route_class=JsonBodyRoute)


@router.post("/logins")
async def start_login(body: LoginRequest, request: Request) -> JSONResponse:
    caller = user_caller(request)
    outcome = await run_blocking(
        request,
        login.start_login,
        context_of(request),
        username=body.username,
        password=body.password,
        platform=Platform(body.platform),
        caller=caller,
    )
    if isinstance(outcome, login.LoggedIn):
        return JSONResponse({"session": session_body(outcome.session, with_token=True)})
    return JSONResponse(
        {
            "login_id": outcome.login_id,
            "expires_at": outcome.expires_at.isoformat(),
            "factors": [factor_body(factor) for factor in outcome.factors],
        }
    )


@router.post("/logins/{login_id}/response")
async def answer_second_factor(
    login_id: str, body: ResponseRequest, request: Request
) -> JSONResponse:
    outcome = await run_blocking(
        request,
        login_response.answer_second_factor,
        context_of(request),
        login_id=login_id[:128],
        factor_id=body.factor_id,
        response=body.response,
        caller=user_caller(request),
    )
    return JSONResponse({"session": session_body(outcome.session, with_token=True)})


def factor_body(factor: OfferedFactor) -> dict[str, Any]:
    challenge: dict[str, Any] | None = None
    if factor.challenge_code is not None:
        challenge = {"code": factor.challenge_code}
    elif factor.challenge_indices is not None:
        challenge = {"indices": list(factor.challenge_indices)}
    return {
        "factor_id": factor.factor_id,
        "kind": str(factor.kind),
        "label": factor.label,
        "challenge": challenge,
    }
