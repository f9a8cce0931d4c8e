"""Users and staff as the services see them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


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
