"""Request and reply bodies of the HTTP contract (../shared/spec/http-api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from securelogin.domain.passwords import MAX_EVALUATED_PASSWORD_LENGTH
from securelogin.services.sessions import SessionView

LOGIN_USERNAME_MAX = 64  # no username is longer than 32 (R1.1); longer input is malformed


def _encodable(value: str) -> str:
    """Refuse strings that are not valid Unicode text (lone surrogates from JSON escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text") from None
    return value


Text = Annotated[str, AfterValidator(_encodable)]


class Body(BaseModel):
    """Every request body. No text field may hold a NUL character: no column can store one
    (PostgreSQL refuses it outright), so it is refused here, naming the field, before any
    rule or query sees it. A body lists in ``nul_answered_by_rules`` the fields whose NUL the
    rules answer themselves (a username at login is ``BAD CHARACTER``, R1.3)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)
    nul_answered_by_rules: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and "\x00" in value:
            if info.field_name not in cls.nul_answered_by_rules:
                raise ValueError("holds a NUL character")
        return value


class LoginRequest(Body):
    # R1.3: a NUL in the username is a bad character; a password is hashed, never stored.
    nul_answered_by_rules = frozenset({"username", "password"})

    username: Annotated[str, Field(min_length=1, max_length=LOGIN_USERNAME_MAX)]
    password: Annotated[Text, Field(min_length=1, max_length=MAX_EVALUATED_PASSWORD_LENGTH)]
    platform: Literal["portal", "trading"]


# A second-factor response of the wrong length, empty included, is answered by the rules
# (login_failed with a hint naming the length, R3.6), not by the schema; only one far past
# any device's length is refused as invalid input.
RESPONSE_MAX = 1024


class ResponseRequest(Body):
    factor_id: Annotated[Text, Field(min_length=1, max_length=128)]
    response: Annotated[Text, Field(max_length=RESPONSE_MAX)]


class QuestionAnswerBody(Body):
    question: Annotated[Text, Field(min_length=1, max_length=300)]
    answer: Annotated[Text, Field(min_length=1, max_length=200)]


class CreateUserRequest(Body):
    username: Annotated[Text, Field(min_length=1, max_length=64)] | None = None
    prefix: Annotated[Text, Field(min_length=1, max_length=16)] | None = None
    password: Annotated[Text, Field(min_length=1, max_length=MAX_EVALUATED_PASSWORD_LENGTH)]
    email: Annotated[Text, Field(min_length=1, max_length=254)]
    country: Annotated[Text, Field(min_length=2, max_length=2)]
    full_name: Annotated[Text, Field(min_length=1, max_length=200)]
    security_questions: Annotated[list[QuestionAnswerBody], Field(min_length=3, max_length=3)]


class SessionBody(BaseModel):
    username: str
    platform: str
    access: str
    factor_kind: str | None
    expires_at: datetime
    replaced_trading_session: bool = False
    token: str | None = None


def session_body(view: SessionView, *, with_token: bool) -> dict[str, object]:
    body: dict[str, object] = {
        "username": view.username,
        "platform": str(view.platform),
        "access": str(view.access),
        "factor_kind": view.factor_kind,
        "expires_at": view.expires_at.isoformat(),
        "replaced_trading_session": view.replaced_trading_session,
    }
    if with_token:
        body = {"token": view.token, **body}
    return body
