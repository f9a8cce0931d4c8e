"""Reading HTML forms: every field a bounded string; problems become messages by the field."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from starlette.datastructures import UploadFile

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


async def read_form(request: Request, *, max_field: int = 4096) -> Form:
    """The submitted form after the CSRF check (403 when forged or missing)."""
    data = await request.form(max_files=0, max_fields=50)
    values: dict[str, str] = {}
    for name, value in data.items():
        if isinstance(value, UploadFile):
            continue
        text = value if len(value) <= max_field else value[: max_field + 1]
        values[name] = text.replace("\x00", "")
    check_csrf(request, values.get(CSRF_FIELD))
    return Form(values)
