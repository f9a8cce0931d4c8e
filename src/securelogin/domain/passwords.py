"""Password policy (R2.2). Hashing itself is a port (services/ports.py: PasswordHasher)."""

from __future__ import annotations

from dataclasses import dataclass

from securelogin.domain.errors import InvalidRequestError

# The longest password the login door will evaluate; longer input is refused as
# invalid_request before any hashing (a 10,000-character password costs nothing).
MAX_EVALUATED_PASSWORD_LENGTH = 1024


@dataclass(frozen=True)
class PasswordPolicy:
    """R2.2 defaults: 8 to 64 characters, a letter and a digit, not containing the username."""

    min_length: int = 8
    max_length: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length <= MAX_EVALUATED_PASSWORD_LENGTH:
            raise ValueError("password policy lengths out of range")


def check_new_password(policy: PasswordPolicy, password: str, username: str) -> None:
    """Refuse a new password that breaks the policy, naming what is wrong."""
    problem = _policy_problem(policy, password, username)
    if problem:
        raise InvalidRequestError(problem, field="password")


def _policy_problem(policy: PasswordPolicy, password: str, username: str) -> str | None:
    if not policy.min_length <= len(password) <= policy.max_length:
        return f"A password is {policy.min_length} to {policy.max_length} characters."
    if not any(ch.isascii() and ch.isalpha() for ch in password):
        return "A password must contain at least one letter."
    if not any(ch.isascii() and ch.isdigit() for ch in password):
        return "A password must contain at least one digit."
    if any(not ch.isprintable() for ch in password):
        return "A password may not contain control characters."
    if username and username.lower() in password.lower():
        return "A password must not contain the username."
    return None
