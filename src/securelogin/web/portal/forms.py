"""Reading HTML forms: every field a bounded string; problems become messages by the field."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from starlette.datastructures import UploadFile

from securelogin.domain.errors import InvalidRequestError
from securelogin.web.portal.pages import CSRF_FIELD, check_csrf


@dataclass
class Form:
    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def require(self, name: str, label: str, max_length: int) -> str:
        value = self.get(name)
        if not value:
            self.errors.setdefault(name, f"Enter your {label}.")
        elif len(value) > max_length:
            self.errors.setdefault(name, f"The {label} is at most {max_length} characters.")
        return value

    def kept(self, *secret_fields: str) -> dict[str, str]:
        """What to put back in the form: everything typed, except secrets."""
        return {k: v for k, v in self.values.items() if k not in secret_fields}


async def read_form(
    request: Request, *, max_field: int = 4096, nul_answered_by_rules: frozenset[str] = frozenset()
) -> Form:
    """The submitted form after the CSRF check (403 when forged or missing).

    A NUL character is refused as in the API's bodies (schemas.Body), never removed: a
    field that holds one is ``invalid_request`` naming it, except the fields listed in
    ``nul_answered_by_rules``, whose NUL the rules answer (at login the username is
    ``BAD CHARACTER``, R1.3, and a password is only hashed). Removing it let
    ``abc\\x00def123`` log in as ``abcdef123``."""
    data = await request.form(max_files=0, max_fields=50)
    values: dict[str, str] = {}
    for name, value in data.items():
        if isinstance(value, UploadFile):
            continue
        values[name] = value if len(value) <= max_field else value[: max_field + 1]
    check_csrf(request, values.get(CSRF_FIELD))
    for name, value in values.items():
        if "\x00" in value and name not in nul_answered_by_rules:
            raise InvalidRequestError(f"The field {name} holds a NUL character.", field=name)
    return Form(values)
