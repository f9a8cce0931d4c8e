"""The form of a second-factor response (R3.6), checked before anything is counted.

A malformed response can never be right, so it is refused with a hint saying what is
wrong with its form, and it is not counted as a failed attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from securelogin.domain.cards import CARD_ALPHABET


@dataclass(frozen=True)
class ResponseForm:
    """What a well-formed response looks like, in words the user understands."""

    length: int
    alphabet: str
    what: str  # "digits" or "characters"


DIGITS = "0123456789"
TOTP_FORM = ResponseForm(6, DIGITS, "digits")  # R5: RFC 6238, 6 digits
CHALLENGE_CARD_FORM = ResponseForm(8, DIGITS, "digits")  # R5: OCRA ...-8: 8 digits
CARD_FORM = ResponseForm(6, CARD_ALPHABET, "characters")  # R5/R7: two 3-character values
PASSCODE_FORM = ResponseForm(8, CARD_ALPHABET, "characters")  # R6.2: 8 characters
MAX_RESPONSE_LENGTH = 64


def form_problem(form: ResponseForm, response: str) -> str | None:
    """A hint naming what is wrong with the form of ``response``, or None if well-formed."""
    if any(ch.isspace() for ch in response):
        return "Remove the spaces: type the characters together."
    if form.alphabet == DIGITS and not all(ch in DIGITS for ch in response):
        return f"The response is {form.length} digits, 0 to 9, and nothing else."
    if len(response) != form.length:
        return f"The response is exactly {form.length} {form.what} (you typed {len(response)})."
    if form.alphabet != DIGITS:
        return _character_problem(form, response)
    return None


def _character_problem(form: ResponseForm, response: str) -> str | None:
    lower = any(ch.islower() for ch in response)
    if lower and all(ch in form.alphabet for ch in response.upper()):
        return "Type the letters in upper case (is Caps Lock off?)."
    if any(ch not in form.alphabet for ch in response):
        return (
            "The response holds a character that cannot appear on it: only the digits 2-9 "
            "and upper-case letters except I and O."
        )
    return None
