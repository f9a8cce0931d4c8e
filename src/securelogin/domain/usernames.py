"""Usernames (R1): what a new one may be, and how login input is screened."""

from __future__ import annotations

import re

from securelogin.domain.errors import BadCharacterError, InvalidRequestError

# R1.1: 6 to 32 characters, a-z and 0-9, starting with a letter.
USERNAME_PATTERN = re.compile(r"[a-z][a-z0-9]{5,31}")
# R1.2: a prefix of 3 to 6 lower-case letters, to which 3 random digits are appended.
PREFIX_PATTERN = re.compile(r"[a-z]{3,6}")
PREFIX_DIGITS = 3
# R1.3: at login, anything outside A-Z a-z 0-9 is a bad character.
LOGIN_CHARACTERS = re.compile(r"[A-Za-z0-9]*")

CAPS_LOCK_HINT = "User names are lower case. Is Caps Lock on?"


def validate_new_username(username: str) -> str:
    """Return ``username`` if it is a valid new username (R1.1), else refuse."""
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidRequestError(
            "A username is 6 to 32 characters, lower-case letters a-z and digits 0-9, "
            "starting with a letter.",
            field="username",
        )
    return username


def username_from_prefix(prefix: str, digits: int) -> str:
    """Append three digits (``0 <= digits < 1000``, chosen by the caller) to a prefix."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise InvalidRequestError("A prefix is 3 to 6 lower-case letters a-z.", field="prefix")
    if not 0 <= digits < 10**PREFIX_DIGITS:
        raise ValueError("digits out of range")
    return f"{prefix}{digits:0{PREFIX_DIGITS}d}"


def screen_login_username(username: str) -> None:
    """R1.3: refuse a username holding a character outside A-Z a-z 0-9.

    Such input is not a login attempt: the caller must not count it.
    """
    if not LOGIN_CHARACTERS.fullmatch(username):
        raise BadCharacterError()


def caps_lock_hint(username: str) -> str | None:
    """R1.4: the hint added when a refused username holds upper-case letters."""
    return CAPS_LOCK_HINT if any("A" <= ch <= "Z" for ch in username) else None
