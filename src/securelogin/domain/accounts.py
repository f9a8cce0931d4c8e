"""Users and staff as the services see them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from securelogin.domain.errors import InvalidRequestError


def check_country(country: str) -> str:
    """An ISO 3166-1 alpha-2 code: two upper-case ASCII letters (e.g. ``US``)."""
    if not (len(country) == 2 and country.isascii() and country.isalpha() and country.isupper()):
        raise InvalidRequestError(
            "The country is an ISO 3166 code of two upper-case letters.", field="country"
        )
    return country


@dataclass(frozen=True)
class User:
    """A client of the brokerage."""

    user_id: int
    username: str
    password_hash: str
    email: str
    country: str
    full_name: str
    created_at: datetime


@dataclass(frozen=True)
class NewUser:
    """What an operator gives to create a user (the password already hashed)."""

    username: str
    password_hash: str
    email: str
    country: str
    full_name: str
    created_at: datetime


class StaffRole(enum.StrEnum):
    """Who holds a staff token."""

    ADMIN = "admin"
    AGENT = "agent"


@dataclass(frozen=True)
class StaffMember:
    """The holder of a staff bearer token."""

    staff_id: int
    name: str
    role: StaffRole
