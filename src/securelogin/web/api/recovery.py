"""Setting a new password with a reset code (R8.3); no session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import Field

from securelogin.domain.passwords import MAX_EVALUATED_PASSWORD_LENGTH
from securelogin.services import password_reset
from securelogin.web.auth import context_of, user_caller
from securelogin.web.schemas import Body, Text

router = APIRouter(prefix="/api/v1")


class PasswordReset(Body):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    reset_code: Annotated[Text, Field(min_length=1, max_length=64)]
    new_password: Annotated[Text, Field(min_length=1, max_length=MAX_EVALUATED_PASSWORD_LENGTH)]


@router.post("/password-resets", status_code=204)
def reset(body: PasswordReset, request: Request) -> Response:
    password_reset.reset_password(
        context_of(request),
        username=body.username,
        reset_code=body.reset_code,
        new_password=body.new_password,
        caller=user_caller(request),
    )
    return Response(status_code=204)
